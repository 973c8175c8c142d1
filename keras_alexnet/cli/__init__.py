"""The `main.py` command line: one absl-py application per subcommand.

Each subcommand lives in its own module of this package. Importing the module defines its absl flags
(and nothing heavier: TensorFlow is imported inside `run`), and the module provides:

- ``run(argv)``: does the work; ``argv`` holds the positional arguments left after flag parsing;
- ``TAKES_ARGUMENTS = True`` (optional): the command accepts positional arguments (files, say);
  without it any positional argument is refused;
- ``validate()`` (optional): checks flag combinations and paths, raising ``FlagError`` before any work;
  a command with ``TAKES_ARGUMENTS`` has ``validate(argv)`` and checks its positional arguments too;
- ``DEFAULT_RUN_VALUES`` (optional): {flag: value} the command's run without data uses instead of the
  flags' defaults (train's preset), shown beside the defaults by `--help` (`flaghelp`);
- ``starting()`` (optional): one line saying what the command is about to do, printed after
  ``validate()`` and before TensorFlow is imported (seconds) so a slow command never starts on a blank
  screen; the import is then shown as a phase of its own ("Loading TensorFlow").

Each flag is defined with ``module_name=`` a `flaghelp` group, the task `--help` lists it under.
`dispatch.main()` picks the module from ``sys.argv[1]`` so only that command's flags exist in a run,
which keeps ``main.py COMMAND --helpfull`` to the flags that matter.
"""
