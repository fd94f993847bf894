"""The PyInstaller bundle's entry script (see packaging/segexplorer.spec).

PyInstaller runs this file as ``__main__``, so it imports the package absolutely.
From a checkout it behaves like ``segexplorer``: ``python -m segexplorer._entry --smoke-test``.
"""

import sys

from segexplorer.frozen import SELF_CHECK_FLAG, bootstrap, self_check, self_check_report


def main() -> int:
    bootstrap()
    if sys.argv[1:] == [SELF_CHECK_FLAG]:  # packaging/build.sh --smoke
        problems = self_check()
        for line in self_check_report():  # what it found: flavour, glibc, libraries, order
            print(f"frozen self-check: {line}")
        for problem in problems:
            print(f"frozen self-check: FAILED: {problem}", file=sys.stderr)
        print("frozen self-check: " + ("failed" if problems else "all passed"))
        return 1 if problems else 0
    from segexplorer.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
