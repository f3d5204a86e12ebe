"""WeChat: the Official Account storefront (messaging) and WeChat Pay v2 (Native)."""
