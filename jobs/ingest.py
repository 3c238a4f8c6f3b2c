"""spark-submit entry point: validate the extract into bronze and quarantine. Takes the options of `cohort-engine run`."""
from _entry import submit

if __name__ == "__main__":
    submit(["run", "--stages", "ingest"])
