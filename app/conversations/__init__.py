"""Conversations: a store's chats with its customers, and who answers them (the bot, or a person)."""
