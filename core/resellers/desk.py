"""`ResellerDesk`: the one object the rest of the shop holds for resellers. It decides nothing itself: it builds
the area's parts, each with only what it uses, and offers their use cases under one name (each attribute below is
the part's own method: "go to definition" twice lands on the code). Built by the composition root
(app/bootstrap.py), which also registers what the desk offers the shop: the `wallet` gateway, the `api` notifier,
the commission hooks and the top-ups (`desk.topups`, core/payments.py TopupLedger).

The parts: accounts.py (accounts, tiers, owners), wallets.py (the ledger, the `wallet` gateway), topups.py (top-ups
paid through a provider), keys.py (API keys, nonces), orders.py (the B2B API's use cases), batch.py (the wallet
order batch), waiting.py (orders waiting for stock), delivery.py (when and how codes go out), commissions.py."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from core.ports import Catalog, UnitOfWorkFactory
from core.resellers.accounts import Accounts
from core.resellers.batch import OrderBatch
from core.resellers.commissions import CommissionBook
from core.resellers.delivery import Deliveries
from core.resellers.keys import ApiKeys
from core.resellers.models import CommissionPolicy, ResellerPolicy
from core.resellers.orders import ApiNotifier, B2BOrders
from core.resellers.topups import Topups
from core.resellers.waiting import WaitingQueue
from core.resellers.wallets import WalletGateway, Wallets
from core.risk import exemptions

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from core.batching import GroupCommitter
    from core.clock import Clock
    from core.risk import Guard
    from core.supply import SupplyDesk
    from core.vault import Vault


class TopupChoiceSettings(Protocol):
    @property
    def amount(self) -> int: ...
    @property
    def stars(self) -> int | None: ...


class ResellerSettings(Protocol):
    """What `configure` reads of the `resellers:` settings section (config/settings/ `Resellers`)."""

    @property
    def commission_bp(self) -> int: ...
    @property
    def commissions(self) -> Mapping[str, int]: ...
    @property
    def wait_hours(self) -> float: ...
    @property
    def topup_minutes(self) -> int: ...
    @property
    def topup_choices(self) -> Iterable[TopupChoiceSettings]: ...
    @property
    def api_exempt(self) -> Iterable[str]: ...
    @property
    def group_exempt(self) -> Iterable[str]: ...


class ResellerDesk:
    """Reseller use cases. Its batch kinds (`OrderRequest`, `NonceUse`, `FillWaiting`) go on the committer it is
    given."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, vault: Vault, *, committer: GroupCommitter,
                 listing: Catalog, guard: Guard, supply: SupplyDesk, wake: Callable[[], None],
                 currency: str | None = None) -> None:
        self.clock = clock
        self.policy = ResellerPolicy()  # the merchant's terms (configure), shared by the parts
        self.api_keys = ApiKeys(uow, clock, vault, committer)
        self.accounts = Accounts(uow, clock, self.api_keys, currency)
        self.wallets = Wallets(uow, clock)
        self.topups = Topups(uow, clock, self.policy, wake)
        self.commission_book = CommissionBook(uow, clock, self.policy)
        deliveries = Deliveries(clock, committer, wake)
        self.waiting = WaitingQueue(clock, committer, deliveries)
        self.batch = OrderBatch(clock, committer, guard, supply, self.policy, self.waiting, deliveries, wake)
        self.orders = B2BOrders(uow, clock, vault, committer, listing, guard, supply, self.policy, deliveries)
        self.gateway = WalletGateway(self.wallets)  # the `wallet` payment provider
        self.notifier = ApiNotifier()  # the `api` channel

        # The use cases, each its part's own method.
        self.create = self.accounts.create
        self.update = self.accounts.update
        self.get = self.accounts.get
        self.bind_owner = self.accounts.bind_owner
        self.reseller_of = self.accounts.reseller_of
        self.top_up = self.wallets.top_up
        self.statement = self.wallets.statement
        self.ledger_sum = self.wallets.ledger_sum
        self.refund_to_wallet = self.wallets.refund_to_wallet
        self.start_topup = self.topups.start_topup
        self.topup = self.topups.topup
        self.topup_payable = self.topups.topup_payable
        self.topup_wallet = self.topups.topup_wallet
        self.refund_topup = self.topups.refund_topup
        self.create_api_key = self.api_keys.create_api_key
        self.revoke_api_key = self.api_keys.revoke_api_key
        self.keys_of = self.api_keys.keys_of
        self.api_key = self.api_keys.api_key
        self.replayed = self.api_keys.replayed
        self.catalog = self.orders.catalog
        self.order = self.orders.order
        self.order_by_key = self.orders.order_by_key
        self.order_for_member = self.orders.order_for_member
        self.check_member_order = self.orders.check_member_order
        self.get_order = self.orders.get_order
        self.fill_waiting = self.waiting.fill_waiting
        self.accrue = self.commission_book.accrue
        self.reverse = self.commission_book.reverse
        self.payout = self.commission_book.payout
        self.commissions = self.commission_book.commissions

    def configure(self, cfg: ResellerSettings) -> ResellerDesk:
        """Rates, the wait and the top-up time from the `resellers` config section (config/settings/)."""
        p = self.policy
        p.commission = CommissionPolicy(cfg.commission_bp, dict(cfg.commissions))
        p.wait = timedelta(hours=cfg.wait_hours)
        p.topup_minutes = cfg.topup_minutes
        p.topup_choices = [(c.amount, c.stars) for c in cfg.topup_choices]
        p.api_exempt = exemptions(cfg.api_exempt)
        p.group_exempt = exemptions(cfg.group_exempt)
        return self
