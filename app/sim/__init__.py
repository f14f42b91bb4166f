"""The simulator's controls (`/v1/sim`, only with MOSTRADOR_WHATSAPP_DRIVER=simulator): play the store owner's
phone (scan a QR code), the customers (send messages, read the store's replies) and the network (faults)."""
