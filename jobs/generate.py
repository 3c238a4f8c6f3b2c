"""spark-submit entry point: write a synthetic extract. Takes the options of `cohort-engine generate`."""
from _entry import submit

if __name__ == "__main__":
    submit(["generate"])
