"""Message history: a store's messages listed, filtered, searched, exported, and counted."""
