"""keras-alexnet command line: `python main.py COMMAND [--flags]`; `python main.py --help` lists commands."""

from keras_alexnet.cli import dispatch

if __name__ == "__main__":
    dispatch.main()
