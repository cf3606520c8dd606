"""python -m graphc.theano program.py [args]: run a Theano program on graphc, unchanged (its
`import theano` gets graphc.theano)."""
import runpy
import sys

from . import install


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    install()
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
