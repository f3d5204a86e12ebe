"""Rules and risk: may this order be made? One decision for every channel (chat, group, B2B API).

    guard.py    `Guard.screen`: the decision (rules, then bans, quotas, the hold cap and the risk score), in the
                caller's write transaction; `reserve_batch` wraps chat orders, `settle` stores the scores
    rules.py    a product's sale rules (`rules:`): parsed, normalized, and `check` (pure)
    scoring.py  the points of one order from what the batch read about its buyer (pure)
    policy.py   the `risk:` thresholds and points (`RiskPolicy`, `policy_from`)
    desk.py     `RiskDesk`: the merchant's side (rules, bans, /risk, the review queue) and challenges, phones
    models.py   the data: `Intent`, `Assessment`, `Reason`, `Profile`, `OrderRisk`, `Ban`, `RiskReport`, ...
    ports.py    `RiskRepo`: the storage the area needs (storage/risk.py, `uow.risk`)

Code outside the area imports from here (`from core.risk import Guard, rules_of`).
"""
from core.risk.desk import RiskDesk
from core.risk.guard import Guard
from core.risk.models import (
    BAN_KINDS,
    NO_ACTIVITY,
    Activity,
    Assessment,
    Ban,
    Challenge,
    Intent,
    OrderRisk,
    Profile,
    Reason,
    RiskReport,
)
from core.risk.policy import ALLOW, CHALLENGE, REFUSE, REVIEW, RiskPolicy, policy_from
from core.risk.ports import RiskRepo
from core.risk.rules import (
    EXEMPTIBLE,
    MEMBER_LEVEL,
    NO_RULES,
    OPEN_HOLDS,
    PARTIAL,
    PER_BUYER,
    PER_DAY,
    PHONE_REQUIRED,
    REGION,
    RESELLERS_ONLY,
    RISK,
    RULE_CODES,
    SALE_ENDED,
    SALE_NOT_STARTED,
    BuyerFacts,
    Counts,
    ProductRules,
    RulesError,
    calling_code,
    check,
    exemptions,
    normalize_phone,
    normalize_rules,
    parse_rules,
    rules_of,
)
from core.risk.rules import KEYS as RULE_KEYS

__all__ = [
    "ALLOW", "BAN_KINDS", "CHALLENGE", "EXEMPTIBLE", "MEMBER_LEVEL", "NO_ACTIVITY", "NO_RULES", "OPEN_HOLDS",
    "PARTIAL", "PER_BUYER", "PER_DAY", "PHONE_REQUIRED", "REFUSE", "REGION", "RESELLERS_ONLY", "REVIEW", "RISK",
    "RULE_CODES", "RULE_KEYS", "SALE_ENDED", "SALE_NOT_STARTED", "Activity", "Assessment", "Ban", "BuyerFacts",
    "Challenge", "Counts", "Guard", "Intent", "OrderRisk", "ProductRules", "Profile", "Reason", "RiskDesk",
    "RiskPolicy", "RiskReport", "RiskRepo", "RulesError", "calling_code", "check", "exemptions", "normalize_phone",
    "normalize_rules", "parse_rules", "policy_from", "rules_of",
]
