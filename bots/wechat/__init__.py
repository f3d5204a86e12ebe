"""The WeChat Official Account storefront.

    client.py    wechatpy's WeChatClient with a configurable API base and one token refresher, driven from
                 threads (`WeChatApi`: async methods, errcodes turned into typed errors); the WeCom group robot
    callback.py  the `/wechat` callback protocol: URL verification, signatures, safe mode (AES), XXE and size
                 checks, de-duplication of WeChat's retries, the 5-second answer budget
    frontend.py  messages and events -> customer flow -> Screens as numbered text; buying (QR by customer-service
                 image), the notifier for channel "wechat" (codes by customer-service message, held when the
                 48-hour window is closed and sent when the buyer writes again)
    admin.py     merchant commands as text for the openids in `wechat.admins`; merchant alerts
    wiring.py    builds all of it on an open App and the HTTP server
    pay.py       WeChat Pay v2 (Native): the payment gateway, QR images, notices, reconciliation
"""
from __future__ import annotations

CHANNEL = "wechat"
LANGUAGE_HINT = "zh_CN"  # WeChat tells us no language: new WeChat customers get Chinese when the store speaks it
