"""`metrics run` executes the jobs in its own process and listens here for how long dbt
and anomaly scoring ran in each step; the rest of a run's wall time is Dagster's
bookkeeping and process start-up, which its progress lines report."""


class StepTimes:
    def __init__(self) -> None:
        self._listeners: list = []

    def listen(self, callback) -> None:
        """callback(seconds) after every such step run in this process."""
        self._listeners.append(callback)

    def stop(self, callback) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def report(self, seconds: float) -> None:
        for listener in list(self._listeners):
            listener(seconds)


DBT_SECONDS = StepTimes()  # dbt's own elapsed time (run_results.json), per dbt step
SCORING_SECONDS = StepTimes()  # per anomalies_<grain> step
