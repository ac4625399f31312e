"""What the tests share: generated audio, a local HTTP server, stand-ins for the chat platforms'
APIs, redis-server and `scriabin` processes, and the reference fixtures of the ports."""
