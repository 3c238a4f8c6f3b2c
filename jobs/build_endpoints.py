"""spark-submit entry point: the time-to-event endpoints of the cohort. Takes the options of `cohort-engine run`."""
from _entry import submit

if __name__ == "__main__":
    submit(["run", "--stages", "endpoints"])
