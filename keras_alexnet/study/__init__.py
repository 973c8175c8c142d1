"""Studies: the papers' claims re-measured as arms x seeds of normal training runs, with intervals and verdicts
(`python main.py study NAME`). definitions: the arms; runner: the runs; statistics; report; figures."""
