"""The table of subcommands: name -> (module, one-line description). Order is the order of `--help`."""

COMMANDS = {
}
