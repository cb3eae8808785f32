"""One module per probe-collector subcommand; each has register(subparsers)."""
