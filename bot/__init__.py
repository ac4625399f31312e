"""Scriabin's front ends: the chat adapters (Discord, Telegram, console), the shared bot logic
(links, per-user limits, replies) and the `scriabin` command line."""
