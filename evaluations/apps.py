from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        # Embedded servers score pending evaluations beside their run executor.
        from evaluations import reviews
        from evaluations.models import Score
        from evaluations.work import embedded
        from runs import retention
        from runs.engine.executor import add_companion

        add_companion(embedded.supervise)
        # Pruning old runs keeps those a person reviewed or compared, unless asked.
        retention.keeper_add(retention.Keeper(name="reviews", kept=reviews.reviews_keep,
                                              let_go=reviews.reviews_let_go))
        # A score keeps no run, but the prune deletes runs without cascades: their scores go first.
        retention.keeper_add(retention.Keeper(
            name="scores", kept=lambda: Score.objects.none().values("run_id"),
            let_go=lambda ids: Score.objects.filter(run_id__in=ids).delete()))
