"""RFC 3161 time-stamping: token parsing (token), checks (verify), client and server."""
