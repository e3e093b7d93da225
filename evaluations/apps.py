from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        # Embedded servers score pending evaluations beside their run executor.
        from evaluations.work import embedded
        from runs.engine.executor import add_companion

        add_companion(embedded.supervise)
