"""The name of every action a buyer can take, one enum per feature, and the old ids buttons already sent still carry.

An action id is a name, or a name and its arguments joined by ":" (`product:42:2`): it rides in Telegram's
callback_data (at most 64 bytes) and in the numbered replies WeChat and the console store. Screens build ids with
`Name.X.id(args...)`, never by spelling a name; each feature's handlers are declared with the same member next to
them (`@router.action(Orders.REVEAL)` in handlers/orders.py), and CustomerFlow includes the feature routers.

Renaming a member breaks every button already sent with the old id: add the old name to OLD_NAMES instead.
"""
from __future__ import annotations

from enum import StrEnum

MAX_ACTION_BYTES = 64  # Telegram's callback_data


class Name(StrEnum):
    """A feature's action names; `id` builds the action id a button carries."""

    def id(self, *args: object) -> str:
        return ":".join((self.value, *map(str, args)))


class Home(Name):
    """handlers/home.py: the menu, help, the language, the terms of sale."""

    MENU = "menu"
    HELP = "help"
    LANGUAGE = "language"  # language[:CODE]
    TERMS = "terms"  # the terms of sale (store.terms)


class Shopping(Name):
    """handlers/catalog.py: browsing, buying, the top-up account, the answer to a risk challenge."""

    CATALOG = "catalog"
    CATEGORY = "category"  # category:INDEX[:PAGE]
    PRODUCT = "product"  # product:ID[:QTY]
    BUY = "buy"  # buy:ID:QTY[:1] (1: at the flash price, core/flash_sales.py)
    TOPUP = "topup"  # topup:ID: ask for the account to recharge
    TOPUP_ACCOUNT = "topup_account"  # the account the buyer typed (never a button)
    TOPUP_CONFIRM = "topup_confirm"  # topup_confirm:ID
    CHALLENGE = "challenge"  # challenge:TOKEN:ANSWER:PRODUCT:QTY (handlers/risk.py draws the question)
    ALERT = "alert"  # alert:ID: tell me when this sold-out product is back (core/stock_alerts.py)
    UNALERT = "unalert"  # unalert:ID: cancel that
    COUPON = "coupon"  # coupon:ID:QTY: ask for a coupon code (core/coupons.py)
    COUPON_CODE = "coupon_code"  # the code the buyer typed (never a button)
    COUPON_CLEAR = "coupon_clear"  # coupon_clear:ID:QTY: buy without the coupon


class Orders(Name):
    """handlers/orders.py: my orders, one order, paying (demo), cancelling, showing the codes again."""

    ORDERS = "orders"  # orders[:PAGE]
    ORDER = "order"  # order:ID
    PAY = "pay"  # pay:ID (the terminal demo's payment)
    CANCEL = "cancel"  # cancel:ID
    REVEAL = "reveal"  # reveal:ID


class Aftersales(Name):
    """handlers/aftersales.py: reporting a problem with an order, the buyer's history."""

    REPORT = "report"  # report:ORDER[:PROBLEM[:t]]
    REPORT_NOTE = "report_note"  # the description the buyer typed (never a button)
    HISTORY = "history"  # history[:PAGE]


class Link(Name):
    """handlers/link.py: linking this account with the same person's other one."""

    LINK = "link"  # what linking does, and the ways on
    LINK_CODE = "link_code"  # give me a code
    LINK_ENTER = "link_enter"  # I have a code: the next message is the code
    LINK_REDEEM = "link_redeem"  # the code typed (`/link CODE`, or after LINK_ENTER)
    UNLINK = "unlink"
    UNLINK_CONFIRM = "unlink_confirm"


class Privacy(Name):
    """handlers/privacy.py: what the store keeps about the buyer (/mydata), and asking for it to be deleted."""

    MYDATA = "mydata"
    DELETE = "mydata_delete"  # asks once more
    DELETE_CONFIRM = "mydata_delete_ok"  # the request goes to the merchants


class Wallet(Name):
    """handlers/wallet.py: a reseller's wallet in the chat."""

    WALLET = "wallet"
    WALLET_TOPUP = "wallet_topup"  # wallet_topup:INDEX (of the configured amounts)
    COMMISSIONS = "commissions"


class Members(Name):
    """handlers/members.py: the buyer's account (level, points), the points mall, the referral link."""

    ACCOUNT = "account"
    MALL = "mall"
    MALL_ITEM = "mall_item"  # mall_item:ID: a mall product, its points price and the buyer's balance
    MALL_BUY = "mall_buy"  # mall_buy:ID: buy one with points
    INVITE = "invite"  # the buyer's referral link (Telegram) or QR code (WeChat)
    COUPONS = "my_coupons"  # the buyer's coupons (bought in the mall, rewards), each with its code
    MALL_COUPON = "mall_coupon"  # mall_coupon:NAME: a coupon of the mall, its points price and the buyer's balance
    MALL_COUPON_BUY = "mall_coupon_buy"  # mall_coupon_buy:NAME: buy one new code with points


class GroupBuying(Name):
    """handlers/group_buy.py: group-buy (拼团)."""

    START = "gb_start"  # gb_start:PRODUCT: open a group at the group price
    GROUP = "gb"  # gb:GROUP: the group's page (paid of needed, time left, the share link)
    JOIN = "gb_join"  # gb_join:GROUP


FEATURES: tuple[type[Name], ...] = (Home, Shopping, Orders, Aftersales, Link, Wallet, Members, GroupBuying,
                                    Privacy)

# The ids of earlier releases -> today's names (the arguments never changed). Buttons already sent in chats, the
# actions a numbered channel stored before the upgrade and WeChat custom menus created then carry these.
OLD_NAMES: dict[str, Name] = {
    "lang": Home.LANGUAGE,
    "cat": Shopping.CATALOG, "c": Shopping.CATEGORY, "p": Shopping.PRODUCT, "tu": Shopping.TOPUP,
    "ta": Shopping.TOPUP_ACCOUNT, "tuc": Shopping.TOPUP_CONFIRM, "ch": Shopping.CHALLENGE,
    "os": Orders.ORDERS, "o": Orders.ORDER, "x": Orders.CANCEL, "k": Orders.REVEAL,
    "rp": Aftersales.REPORT, "rn": Aftersales.REPORT_NOTE, "hs": Aftersales.HISTORY,
    "lk": Link.LINK, "lg": Link.LINK_CODE, "lc": Link.LINK_ENTER, "lr": Link.LINK_REDEEM, "lu": Link.UNLINK,
    "lux": Link.UNLINK_CONFIRM,
    "wl": Wallet.WALLET, "wt": Wallet.WALLET_TOPUP, "wc": Wallet.COMMISSIONS,
}
