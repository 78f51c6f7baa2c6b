"""The retrain and swap sections of the settings: how candidates are trained and gated, and how they are
swapped in (part of :class:`embguard.config.settings.Settings`).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from embguard.config.bounds import MAX_INT, MAX_SECONDS, PositiveFloat, PositiveInt, Seconds, Section

Recipe = Literal["finetune", "adapter", "matryoshka", "distill", "domain_adapt"]
RECIPES: tuple[str, ...] = get_args(Recipe)  # what one candidate can be trained with
AUTO = "auto"  # [retrain] recipe = "auto": train several (auto_recipes), keep the best on a validation split


class RetrainSettings(Section):
    sustained_checks: PositiveInt = Field(3, description="drifted checks in a row before retraining")
    min_feedback_pairs: PositiveInt = Field(200, description="feedback pairs needed since the last model")
    gate_margin: Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.0,
        description="nDCG@10 gain the lower end of the gain's 95% CI must reach (0: significantly better; clicked "
        "held-out queries understate a candidate's gain, benchmarks/results/product.md)",
    )
    guard_tolerance: Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.02, description="allowed guard-set loss"
    )
    auto_approve: StrictBool = Field(False, description="swap without a human (off by default)")
    epochs: PositiveFloat | Literal["auto"] = Field(
        "auto",
        description="fine-tuning epochs over the feedback pairs; auto = up to max_epochs on all but a validation "
        "split of the training queries, stopping after patience epochs without a better nDCG@10, then the best "
        "number of epochs again on all pairs",
    )
    max_epochs: Annotated[StrictInt, Field(ge=1, le=100)] = Field(
        4, description="epochs = 'auto': the most epochs tried (benchmarks/results/product.md)"
    )
    patience: Annotated[StrictInt, Field(ge=0, le=100)] = Field(
        1,
        description="epochs = 'auto': stop choosing once this many epochs in a row did not raise the validation "
        "nDCG@10 (0: try every epoch up to max_epochs); the best epoch's weights are kept either way",
    )
    budget_s: Seconds = Field(
        600,
        description="epochs or recipe = 'auto': seconds of training: choosing starts no epoch that would end past "
        "it, and when training the winner again on all pairs would, the winner as chosen (on all but the validation "
        "split) is gated instead; the report says so either way. 240 keeps train + gate near 5 minutes for 1,000 "
        "clicked queries on 2 cores, at a cost (docs/retrain.md)",
    )
    pseudo_queries: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        500,
        description="training pairs made from documents nobody searched (first sentence -> the rest of the "
        "document), at most as many as there are feedback pairs; 0 disables them",
    )
    batch_size: Annotated[StrictInt, Field(ge=2, le=MAX_INT)] = Field(
        32, description="training batch (in-batch negatives)"
    )
    learning_rate: PositiveFloat = Field(5e-5, description="fine-tuning learning rate")
    max_seq_length: Annotated[StrictInt, Field(ge=8, le=8192)] = Field(
        64, description="training truncation in tokens (serving keeps the model's own); 64 halves step time"
    )
    held_out_fraction: Annotated[StrictFloat, Field(gt=0, lt=1, allow_inf_nan=False)] = Field(
        0.3, description="share of labelled queries kept out of training for the gate"
    )
    min_held_out: PositiveInt = Field(30, description="fewest held-out queries the gate accepts")
    hard_negatives: StrictBool = Field(True, description="mine hard negatives from the live index")
    guard_queries: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        200, description="general-domain guard queries (forgetting check); 0 disables the guard"
    )
    timeout_s: Seconds = Field(6 * 3600, description="a training subprocess running longer is stopped")
    loss: Literal["mnrl", "cached_mnrl"] = Field(
        "mnrl", description="contrastive loss; cached_mnrl bounds memory by mini_batch_size for large batches"
    )
    mini_batch_size: Annotated[StrictInt, Field(ge=1, le=MAX_INT)] = Field(
        32, description="cached_mnrl: rows encoded at once (memory), independent of batch_size (quality)"
    )
    processes: Annotated[StrictInt, Field(ge=1, le=64)] = Field(
        1,
        description="data-parallel training processes (torchrun), one per device: with model.device = 'cuda' one "
        "per GPU, on CPU over gloo; in-batch negatives are gathered across them",
    )
    recipe: Literal[Recipe, "auto"] = Field(
        "finetune",
        description="how a candidate is trained (embguard/training/recipes.py): finetune = contrastive fine-tune "
        "(with mined hard negatives unless hard_negatives = false); adapter = a query-side linear map on the serving "
        "model, seconds to train, and the swap copies the document vectors instead of re-embedding them; matryoshka = "
        "the contrastive fine-tune over nested dimensions (matryoshka_dims), served at matryoshka_serve_dim; "
        "distill = MarginMSE from teacher_model over hard-negative triplets; domain_adapt = TSDAE on "
        "domain_documents of the collection's own documents first, for collections with little feedback; auto = "
        "train each of auto_recipes within auto_budget_s and keep the best on a validation split of the training "
        "queries",
    )
    adapter_epochs: PositiveInt = Field(3, description="adapter: epochs over the feedback pairs (it overfits after ~5)")
    matryoshka_serve_dim: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        0,
        description="matryoshka: serve vectors truncated to this many dimensions (one of matryoshka_dims; the "
        "swap builds the new collection at it); 0 serves the model's full dimension",
    )
    auto_recipes: tuple[Recipe, ...] = Field(
        ("adapter", "finetune"), description="auto: the recipes tried, in this order (cheapest first)"
    )
    auto_budget_s: Seconds = Field(
        3600, description="auto: no further recipe starts after this much training time (the first always runs)"
    )
    validation_fraction: Annotated[StrictFloat, Field(gt=0, lt=1, allow_inf_nan=False)] = Field(
        0.2, description="auto: share of the training queries held back to choose the recipe (never the gate's)"
    )
    matryoshka_dims: tuple[PositiveInt, ...] = Field(
        (256, 128, 64), description="matryoshka: smaller dimensions trained besides the model's own"
    )
    teacher_model: StrictStr = Field("", description="distill: local directory of the teacher (bi- or cross-encoder)")
    domain_documents: PositiveInt = Field(2000, description="domain_adapt: documents sampled for TSDAE")
    tsdae_epochs: PositiveFloat = Field(1.0, description="domain_adapt: TSDAE epochs over those documents")
    gate_max_docs: PositiveInt = Field(
        20_000,
        description="above this many documents the gate ranks a pooled sub-corpus (relevant documents, "
        "both models' top gate_pool_k from the live index, gate_distractors random ones) "
        "instead of re-encoding the whole corpus with the candidate",
    )
    gate_pool_k: PositiveInt = Field(100, description="live-index neighbours pooled per held-out query and model")
    gate_distractors: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        5_000, description="random documents added to the gate's pooled sub-corpus"
    )

    @model_validator(mode="after")
    def _recipe_inputs(self) -> RetrainSettings:
        used = set(self.auto_recipes) if self.recipe == AUTO else {self.recipe}
        if "distill" in used and not self.teacher_model:
            raise ValueError(
                "retrain.recipe = 'distill' needs retrain.teacher_model: the local directory of the teacher model"
            )
        if "distill" in used and not self.hard_negatives:
            raise ValueError(
                "retrain.recipe = 'distill' learns the teacher's margins on hard-negative triplets; set "
                "retrain.hard_negatives = true"
            )
        if self.matryoshka_serve_dim and self.matryoshka_serve_dim not in self.matryoshka_dims:
            raise ValueError(
                f"retrain.matryoshka_serve_dim = {self.matryoshka_serve_dim} is not one of retrain.matryoshka_dims "
                f"{list(self.matryoshka_dims)}: only a trained prefix length keeps working when served; add it "
                "there or set 0 to serve the full dimension"
            )
        if self.recipe == AUTO and not self.auto_recipes:
            raise ValueError("retrain.recipe = 'auto' needs at least one recipe in retrain.auto_recipes")
        return self


class SwapSettings(Section):
    batch_size: PositiveInt = Field(256, description="documents re-embedded per backfill batch")
    min_overlap: Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.1, description="smallest mean top-10 overlap between old and new collection the shadow check accepts"
    )
    shadow_queries: PositiveInt = Field(100, description="queries the shadow check runs against both collections")
    grace_s: Annotated[StrictFloat, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)] = Field(
        5.0, description="wait after the alias switch before the old collection stops getting dual writes"
    )
    retention_s: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        7 * 86400, description="`embguard gc` keeps collections no alias points to for this long"
    )
    engine: Literal["local", "ray"] = Field(
        "local",
        description="who re-embeds the backfill: this process ('local') or a Ray cluster ('ray', needs "
        "`pip install embguard[ray]`)",
    )
    ray_address: str = Field(
        "",
        description="Ray cluster for engine='ray': '' starts a local Ray on this machine, 'auto' joins the "
        "cluster this machine belongs to, or a 'ray://host:10001' address",
    )
    ray_workers: Annotated[StrictInt, Field(ge=0)] = Field(
        0,
        description="encoder actors for engine='ray' (each loads the candidate once); 0 = one per GPU when "
        "model.device='cuda', else one per CPU of the cluster",
    )
