"""Scriabin's front ends. `core` is the one request flow every chat platform goes through
(limits, uploads, placeholder, answer, chart, buttons, failures); `platforms` registers the
adapters (`discord/`, `telegram/`; `console` when no token is set), which only parse their
events and render; `replies`, `chart`, `limits`, `feedback` and `links` serve the flow; `cli`
is the `scriabin` command (`runner` for `scriabin bot`, `classify_cli`)."""
