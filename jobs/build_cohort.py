"""spark-submit entry point: patient facts, the study cohort and its attrition. Takes the options of `cohort-engine run`."""
from _entry import submit

if __name__ == "__main__":
    submit(["run", "--stages", "cohort"])
