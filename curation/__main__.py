from curation.cli import main

raise SystemExit(main(prog="python -m curation"))
