"""What the orders bot says, in Spanish (default) and English. Placeholders are filled by `str.format`."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "greeting": "¡Hola! Bienvenido/a a {store}. Estos son nuestros productos:",
        "catalog_hint": "Para pedir escribí cantidad x número, por ejemplo *2 x 1*. Escribí *ayuda* para ver más.",
        "help": (
            "Cómo pedir:\n"
            "• *2 x 3*: agrega 2 unidades del producto 3 (también *agregar 3 2*)\n"
            "• *3*: agrega 1 unidad del producto 3\n"
            "• *quitar 3*: saca el producto 3 del carrito (*quitar 3 1* saca solo 1)\n"
            "• *carrito*: muestra tu pedido y el total\n"
            "• *vaciar*: vacía el carrito\n"
            "• *menu*: muestra los productos\n"
            "• *pedir*: termina y confirma el pedido"
        ),
        "added": "Agregué {quantity} x {item}.",
        "removed": "Saqué {quantity} x {item}.",
        "not_in_cart": "{item} no está en tu carrito.",
        "unknown_item": "No encontré el producto «{item}». Escribí *menu* para ver la lista.",
        "bad_quantity": "La cantidad tiene que ser entre 1 y {max}.",
        "cart": "Tu carrito:\n{lines}\nTotal: {total}",
        "cart_next": "Seguí agregando o escribí *pedir* para terminar.",
        "cart_empty": "Tu carrito está vacío. Escribí *menu* para ver los productos.",
        "cleared": "Vacié tu carrito.",
        "ask_fulfilment": "¿Cómo lo querés recibir?\n1. Envío a domicilio ({fee})\n2. Retiro en el local\n0. Volver",
        "ask_address": "¿A qué dirección lo enviamos?",
        "delivery_line": "Envío",
        "to_address": "Envío a: {address}",
        "pickup": "Retirás en el local.",
        "confirm": "{summary}\n{fulfilment}\n¿Confirmás el pedido?\n1. Sí\n2. No",
        "placed": "¡Pedido #{number} confirmado! Total: {total}.\n{fulfilment}\n¡Gracias por tu compra!",
        "not_placed": "Listo, no confirmé el pedido. Tu carrito sigue guardado: escribí *pedir* cuando quieras.",
        "not_understood": "No entendí tu mensaje.",
    },
    "en": {
        "greeting": "Hi! Welcome to {store}. Here is what we have:",
        "catalog_hint": "To order type quantity x number, e.g. *2 x 1*. Type *help* for more.",
        "help": (
            "How to order:\n"
            "• *2 x 3*: adds 2 of item 3 (also *add 3 2*)\n"
            "• *3*: adds 1 of item 3\n"
            "• *remove 3*: takes item 3 out of the cart (*remove 3 1* takes out just 1)\n"
            "• *cart*: shows your order and its total\n"
            "• *clear*: empties the cart\n"
            "• *menu*: shows the items\n"
            "• *checkout*: finish and confirm the order"
        ),
        "added": "Added {quantity} x {item}.",
        "removed": "Removed {quantity} x {item}.",
        "not_in_cart": "{item} is not in your cart.",
        "unknown_item": "I couldn't find item “{item}”. Type *menu* to see the list.",
        "bad_quantity": "The quantity must be between 1 and {max}.",
        "cart": "Your cart:\n{lines}\nTotal: {total}",
        "cart_next": "Keep adding, or type *checkout* to finish.",
        "cart_empty": "Your cart is empty. Type *menu* to see the items.",
        "cleared": "Your cart is now empty.",
        "ask_fulfilment": "How would you like to get it?\n1. Delivery ({fee})\n2. Pickup at the store\n0. Back",
        "ask_address": "What address should we deliver to?",
        "delivery_line": "Delivery",
        "to_address": "Delivery to: {address}",
        "pickup": "You pick it up at the store.",
        "confirm": "{summary}\n{fulfilment}\nShall I place the order?\n1. Yes\n2. No",
        "placed": "Order #{number} confirmed! Total: {total}.\n{fulfilment}\nThank you!",
        "not_placed": "OK, I did not place the order. Your cart is saved: type *checkout* whenever you like.",
        "not_understood": "Sorry, I didn't get that.",
    },
}
