"""spark-submit entry point: survival, safety and patterns analyses, disclosure control and the report. Takes the options of `cohort-engine run`."""
from _entry import submit

if __name__ == "__main__":
    submit(["run", "--stages", "analysis"])
