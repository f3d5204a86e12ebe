"""Members (会员): levels by cumulative spend, points (积分) and the points mall (积分商城), referral rewards (邀请有礼)
and the new-buyer gift (新人礼包). Configured under `marketing.members` (core/members/policy.py).

- **Levels**: every paid order is counted (table member_spend, store currency; linked accounts are one person) in
  the payment's own transaction (`MemberDesk.on_paid`, an `OrderBook.on_paid` hook: it sees every paid order, not
  only those a promotion priced), and the level its spend reaches is written to `Customer.level` of each of the
  person's accounts (what the `min_level` rule and `/broadcast level=N` read). A refund (`on_refunded`, in the
  refund's transaction) stops counting the order and lowers the level the spend had reached; a level a merchant
  set above the spend stays. The level's discount is the "level" promotion (core/members/promotions.py).
- **Points**: earned per currency unit paid (a Stars order by its price in the store currency), credited with the
  payment, expiring after `points_days` (lazily: an expired credit stops counting when read), taken back on
  refund (core/members/points.py tells the ledger). Spent in the points mall: the "points" promotion makes the
  order free and takes the points when the order is made; the order is paid with `Shop.pay` through the "points"
  gateway (amount 0) and delivered as any other.
- **Referrals**: each buyer has a code (derived with the store's key, stored as a fingerprint) carried by
  `/start r_<code>`; the first deep link a buyer came by is kept (handlers/customer.py). The referrer is rewarded
  once per referee person when the referee's first paid order is paid (delivered in the same transaction for
  codes); never for the same person (linked accounts) nor for a pair who referred each other; taken back if that
  order is refunded.
- **New-buyer gift**: points on the first /start or on the first paid order (`gift_on`), once per person.
"""
from core.members.desk import REFERRAL_PREFIX, MemberDesk, Profile, buy_with_points
from core.members.policy import Level, MallItem, MemberPolicy
from core.members.ports import MemberRepo, PointsEntry, Spend
from core.members.promotions import POINTS, LevelPromotion, PointsGateway, PointsPromotion

__all__ = ["POINTS", "REFERRAL_PREFIX", "Level", "LevelPromotion", "MallItem", "MemberDesk", "MemberPolicy",
           "MemberRepo", "PointsEntry", "PointsGateway", "PointsPromotion", "Profile", "Spend", "buy_with_points"]
