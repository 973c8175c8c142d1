"""`main.py COMMAND --help`: the command's flags grouped by what a user does with them.

Each flag is defined with ``module_name=`` one of the group headings below (absl files a flag under the
module that defines it; here the "module" is its group), so `--help` lists the flags group by group in
`GROUPS` order, and absl's `--helpfull` shows the same headings beside its own (--verbosity, --flagfile).
A command's `DEFAULT_RUN_VALUES` ({flag: value} its run without data uses instead of the flag's default,
e.g. train's preset) are shown beside the defaults.
"""

import re
import textwrap

from absl import flags

MODEL = "model"
DATA = "data and augmentation"
OPTIMISATION = "optimisation and schedule"
EVALUATION = "evaluation"
OUTPUTS = "outputs and checkpoints"
SPEED = "speed"
DISTRIBUTION = "distribution"
SERVING = "TF Serving"
FIGURE = "figure"
STUDY = "arms and seeds"
GROUPS = (STUDY, MODEL, DATA, OPTIMISATION, EVALUATION, FIGURE, SERVING, OUTPUTS, SPEED, DISTRIBUTION)
# Flags of the project defined without a group (shown last, so none is hidden).
OTHER = "other"
_PROJECT_PACKAGES = ("keras_alexnet", "pipelines", "callbacks")
_WIDTH = 100
_NO_BREAK = "\u00a0"


def grouped_flags(flag_values=flags.FLAGS) -> dict:
    """{heading: [flags]} of the command's own flags (not absl's), headings in `GROUPS` order, then
    `OTHER`; within a group, in the order they were defined."""
    by_module = flag_values.flags_by_module_dict()
    groups = {heading: list(by_module[heading]) for heading in GROUPS if by_module.get(heading)}
    other = [flag for module, defined in by_module.items() if module.split(".")[0] in _PROJECT_PACKAGES
             for flag in defined]
    if other:
        groups[OTHER] = other
    return groups


def _shown(value) -> str:
    if value == "":
        return '""'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def flag_help(flag, default_run=None) -> str:
    """One flag: its name (and choices), default (and the default run's value where it differs), then its
    help text."""
    name = f"--[no]{flag.name}" if isinstance(flag, flags.BooleanFlag) else f"--{flag.name}"
    text = flag.help
    if isinstance(flag, flags.EnumFlag):
        choices = f"<{'|'.join(flag.parser.enum_values)}>"
        name += f"={choices}"
        text = text.removeprefix(f"{choices}: ")  # absl's enum help starts with the choices
    notes = [f"default: {_shown(flag.default)}"] if flag.default is not None else []
    if default_run is not None and flag.name in default_run and default_run[flag.name] != flag.default:
        notes.append(f"default run: {_shown(default_run[flag.name])}")
    lines = [f"  {name}"]
    if notes:
        shown = f"({'; '.join(notes)})"
        if len(lines[0]) + 2 + len(shown) <= _WIDTH:
            lines[0] += f"  {shown}"
        else:
            lines.append(" " * 6 + shown)
    return "\n".join(lines + [_wrapped(text)])


def _wrapped(text: str) -> str:
    """`text` wrapped, indented, never broken inside a citation ("[AlexNet §3.2, VGG §3.3]")."""
    kept = re.sub(r"\[[^\]]*\]", lambda cited: cited.group().replace(" ", _NO_BREAK), text)
    wrapped = textwrap.fill(kept, _WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6,
                            break_on_hyphens=False)
    return wrapped.replace(_NO_BREAK, " ")


def command_help(module, flag_values=flags.FLAGS) -> str:
    """The command's description, then its flags by group."""
    default_run = getattr(module, "DEFAULT_RUN_VALUES", None)
    sections = [(module.__doc__ or "").strip()]
    if default_run:
        sections.append("\"default run\": the value the command's default run (no data given) uses.")
    for heading, defined in grouped_flags(flag_values).items():
        sections.append(f"{heading}:\n" + "\n".join(flag_help(flag, default_run) for flag in defined))
    sections.append("`--helpfull` adds absl's own flags (--verbosity, --flagfile, ...).")
    return "\n\n".join(sections)
