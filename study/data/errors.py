"""The one error every kind of bad input data raises (torch-free, so that validation can name it)."""


class DataError(ValueError):
    """Bad input data. The message always names the offending path (or setting) and the problem."""

    def __init__(self, where, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = str(where), problem

    def __reduce__(self):  # rebuilt from both arguments when Ray sends it from a worker to the driver
        return type(self), (self.where, self.problem)
