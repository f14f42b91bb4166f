"""Which booking slots are free: opening hours, minus what is taken, minus the past. Pure functions.

Times are wall-clock times in the store's time zone: a slot "09:00" is 09:00 where the store is, whatever the
server's zone. A slot must fit whole inside an opening range (a 60-minute service is not offered at 12:30 when
the store closes at 13:00), and must not overlap a booking of the same service.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.bots.configs import WEEKDAYS, BookableService, BookingConfig

# A store open one day a week still shows `days_ahead` days; a store closed every day shows none.
_MAX_WEEKS = 60


def store_zone(config: BookingConfig) -> ZoneInfo:
    return ZoneInfo(config.timezone)


def local_today(config: BookingConfig, now: datetime) -> date:
    return now.astimezone(store_zone(config)).date()


def opening_ranges(config: BookingConfig, day: date) -> list[tuple[datetime, datetime]]:
    zone = store_zone(config)
    ranges = config.opening_hours.get(WEEKDAYS[day.weekday()], [])
    return sorted(
        (
            datetime.combine(day, time.fromisoformat(r.start), tzinfo=zone),
            datetime.combine(day, time.fromisoformat(r.end), tzinfo=zone),
        )
        for r in ranges
    )


def open_days(config: BookingConfig, today: date) -> list[date]:
    """The next `days_ahead` days the store is open, starting today."""
    days: list[date] = []
    day = today
    while len(days) < config.days_ahead and day < today + timedelta(weeks=_MAX_WEEKS):
        if opening_ranges(config, day):
            days.append(day)
        day += timedelta(days=1)
    return days


def free_slots(
    config: BookingConfig, service: BookableService, day: date, taken: list[datetime], now: datetime
) -> list[datetime]:
    """Start times on `day` that fit in an opening range, start after `now` and overlap no taken booking."""
    duration = timedelta(minutes=service.duration_minutes)
    step = timedelta(minutes=config.slot_minutes)
    free: set[datetime] = set()
    for opens, closes in opening_ranges(config, day):
        start = opens
        while start + duration <= closes:
            if start > now and not any(start < t + duration and t < start + duration for t in taken):
                free.add(start)
            start += step
    return sorted(free)
