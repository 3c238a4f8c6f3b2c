"""spark-submit entry point: every stage in order. Takes the options of `cohort-engine run`."""
from _entry import submit

if __name__ == "__main__":
    submit(["run"])
