"""Ray Tune sweeps of ViewSAM's λ_dyn, α, δ and λ on a weak-safe validation CVR-IDF1
(:mod:`raysys.tune.sweep`; ``raysys tune``). Nothing is imported at package import."""
