"""spark-submit entry point: drug exposures and lines of therapy. Takes the options of `cohort-engine run`."""
from _entry import submit

if __name__ == "__main__":
    submit(["run", "--stages", "lines"])
