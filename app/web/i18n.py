"""The page's words in Spanish and English: one dictionary per language, chosen per request.

Order: `?lang=` (the switch link, remembered in a cookie), then the cookie, then `Accept-Language`, then Spanish.
"""

from __future__ import annotations

from starlette.requests import Request

LANG_COOKIE = "mostrador_lang"
DEFAULT = "es"

MESSAGES: dict[str, dict[str, str]] = {
    "es": {
        "app_name": "Mostrador",
        "switch_lang": "English",
        "tagline": "Conectá el WhatsApp de tu negocio y dejá que el bot atienda.",
        "login_title": "Iniciar sesión",
        "signup_title": "Crear una cuenta",
        "email": "Correo electrónico",
        "password": "Contraseña",
        "password_hint": "Al menos 10 caracteres.",
        "business_name": "Nombre del negocio",
        "login": "Entrar",
        "signup": "Crear cuenta",
        "logout": "Salir",
        "wrong_login": "El correo o la contraseña no son correctos.",
        "error_generic": "Algo salió mal. Probá de nuevo.",
        "your_stores": "Tus tiendas",
        "no_stores": "Todavía no tenés tiendas.",
        "new_store": "Nueva tienda",
        "store_name": "Nombre de la tienda",
        "create": "Crear",
        "open": "Abrir",
        "back": "Volver a tus tiendas",
        "status_unlinked": "Sin vincular",
        "status_linking": "Vinculando",
        "status_connected": "Conectada",
        "status_reconnecting": "Reconectando",
        "status_logged_out": "Sesión cerrada",
        "status_error": "Error",
        "link_title": "Vincular WhatsApp",
        "link_button": "Vincular WhatsApp",
        "steps": "En el teléfono: WhatsApp → Dispositivos vinculados → Vincular un dispositivo, y escaneá este código.",
        "qr_alt": "Código QR para vincular WhatsApp",
        "expires_in": "El código cambia en {s} s",
        "waiting_qr": "Esperando el código…",
        "qr_expired": "El código venció sin que se escaneara. Pedí uno nuevo.",
        "logged_out": "Se cerró la sesión de WhatsApp desde el teléfono. Volvé a vincularlo.",
        "conn_error": "No pudimos conectar con WhatsApp: {reason}",
        "retry": "Reintentar",
        "connected_as": "Conectado como {phone}",
        "reconnecting": "Se cortó la conexión; reconectando…",
        "use_phone": "Usar número de teléfono",
        "phone": "Número de WhatsApp (con código de país)",
        "get_code": "Pedir código",
        "pairing_steps": (
            "En el teléfono: WhatsApp → Dispositivos vinculados → Vincular con número de teléfono, y escribí:"
        ),
        "sim_title": "Teléfono simulado",
        "sim_intro": "Probá sin teléfono: escaneá el código con el teléfono simulado y escribí como un cliente.",
        "sim_scan": "Escanear con el teléfono simulado",
        "sim_from": "Número del cliente",
        "sim_message": "Mensaje",
        "sim_send": "Enviar",
        "sim_logout": "Cerrar sesión desde el teléfono",
        "conversations": "Conversaciones recientes",
        "no_conversations": "Todavía no hay conversaciones.",
        "paused": "Bot en pausa",
        "resume": "Reanudar el bot",
        "customer": "Cliente",
        "bot": "Tienda",
        "read_only": "Solo lectura: tu rol no permite cambios.",
        "onboard_title": "Vincular el WhatsApp de {store}",
        "onboard_gone": "Este enlace ya no sirve: venció o fue revocado. Pedile uno nuevo a quien te lo mandó.",
        "onboard_done": "¡Listo! El WhatsApp de la tienda quedó vinculado. Ya podés cerrar esta página.",
        "onboarding_links": "Enlaces para vincular",
        "onboarding_intro": "Mandale un enlace al dueño del teléfono: lo abre sin cuenta y escanea el código.",
        "new_link": "Crear enlace",
        "revoke": "Revocar",
        "expires": "Vence",
        "link_created": "Enlace creado (se muestra una sola vez):",
    },
    "en": {
        "app_name": "Mostrador",
        "switch_lang": "Español",
        "tagline": "Link your shop's WhatsApp and let the bot answer.",
        "login_title": "Log in",
        "signup_title": "Create an account",
        "email": "Email",
        "password": "Password",
        "password_hint": "At least 10 characters.",
        "business_name": "Business name",
        "login": "Log in",
        "signup": "Sign up",
        "logout": "Log out",
        "wrong_login": "Wrong email or password.",
        "error_generic": "Something went wrong. Please try again.",
        "your_stores": "Your stores",
        "no_stores": "You have no stores yet.",
        "new_store": "New store",
        "store_name": "Store name",
        "create": "Create",
        "open": "Open",
        "back": "Back to your stores",
        "status_unlinked": "Not linked",
        "status_linking": "Linking",
        "status_connected": "Connected",
        "status_reconnecting": "Reconnecting",
        "status_logged_out": "Logged out",
        "status_error": "Error",
        "link_title": "Link WhatsApp",
        "link_button": "Link WhatsApp",
        "steps": "On the phone: WhatsApp → Linked devices → Link a device, then scan this code.",
        "qr_alt": "QR code to link WhatsApp",
        "expires_in": "The code changes in {s} s",
        "waiting_qr": "Waiting for the code…",
        "qr_expired": "The code expired before it was scanned. Ask for a new one.",
        "logged_out": "WhatsApp was logged out from the phone. Link it again.",
        "conn_error": "We could not connect to WhatsApp: {reason}",
        "retry": "Try again",
        "connected_as": "Connected as {phone}",
        "reconnecting": "The connection dropped; reconnecting…",
        "use_phone": "Use phone number instead",
        "phone": "WhatsApp number (with country code)",
        "get_code": "Get a code",
        "pairing_steps": "On the phone: WhatsApp → Linked devices → Link with phone number, and type:",
        "sim_title": "Simulated phone",
        "sim_intro": "Try it without a phone: scan the code with the simulated phone, then write as a customer.",
        "sim_scan": "Scan with the simulated phone",
        "sim_from": "Customer's number",
        "sim_message": "Message",
        "sim_send": "Send",
        "sim_logout": "Log out from the phone",
        "conversations": "Recent conversations",
        "no_conversations": "No conversations yet.",
        "paused": "Bot paused",
        "resume": "Resume the bot",
        "customer": "Customer",
        "bot": "Store",
        "read_only": "Read only: your role cannot change anything.",
        "onboard_title": "Link {store}'s WhatsApp",
        "onboard_gone": "This link no longer works: it expired or was revoked. Ask whoever sent it for a new one.",
        "onboard_done": "Done! The store's WhatsApp is linked. You can close this page.",
        "onboarding_links": "Linking links",
        "onboarding_intro": "Send a link to whoever has the phone: it opens without an account and shows the code.",
        "new_link": "Create a link",
        "revoke": "Revoke",
        "expires": "Expires",
        "link_created": "Link created (shown this once):",
    },
}


def language(request: Request) -> str:
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in MESSAGES:
            return candidate
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in MESSAGES:
            return tag
    return DEFAULT


def other_language(lang: str) -> str:
    return "en" if lang == "es" else "es"
