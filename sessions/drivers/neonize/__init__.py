"""The real WhatsApp network, through neonize 0.5.2 (Python bindings over whatsmeow, a Go library).

This package is the only code that imports neonize (tests/foundation/test_layering.py checks it). What it has
to work around (docs/architecture.md, "neonize 0.5.2", plus what reading neonize's Go side showed) is
told in full in the module that deals with it:

- `auth_store`: auth state lives in whatsmeow's PostgreSQL store (a client `name` starting with `postgres`,
  lib/pq's URL form). Every connect attempt opens its own database pool that neonize never closes: each
  attempt gets a unique `application_name` and its sessions are ended with `pg_terminate_backend` afterwards.
- `connection`: each store names its device (`new_device=True` to pair, `jid=<device JID>` to resume);
  resuming a JID that is not in the store crashes the whole process, so the row is looked up first. neonize's
  send takes no message id: `send_text` ignores `wa_id` and returns the id whatsmeow assigned.
- `runtime`: neonize keeps its clients in plain Go maps (a read during a connect or stop kills the process: a
  reader/writer guard); the Go side queues events in a 100-slot channel and whatsmeow acknowledges a message
  once queued, so each event callback blocks until its handler finished (in order, with back-pressure; up to
  ~100 acknowledged messages can still be lost if the process dies); one event loop per process; an executor
  thread per live client; neonize's GC finalizer rebound and detached.
- `events`: neonize's protobufs as driver events (`MessageInfo.Timestamp` in milliseconds, `SendResponse`'s in
  seconds; LID chats mapped to phone numbers; receipt types checked for presence).
- `driver`: the `NeonizeDriver` shared by a process's connections (store cap, guard, loop, auth store).
"""

from sessions.drivers.neonize.auth_store import whatsmeow_postgres_url
from sessions.drivers.neonize.connection import NeonizeConnection
from sessions.drivers.neonize.driver import NeonizeDriver
from sessions.drivers.neonize.events import describe_connect_error, epoch_to_datetime, jid_from_string
from sessions.drivers.neonize.runtime import dispatch_from_go, fallback_message_id

__all__ = [
    "NeonizeConnection",
    "NeonizeDriver",
    "describe_connect_error",
    "dispatch_from_go",
    "epoch_to_datetime",
    "fallback_message_id",
    "jid_from_string",
    "whatsmeow_postgres_url",
]
