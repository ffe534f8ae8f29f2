"""Offline, stateful emulator of the parts of the Stripe API a subscription business uses.

Stdlib only at runtime. ``stripe_emulator.client`` (the in-process transport) and
``stripe_emulator.shape_check`` import stripe-python; nothing else does.
"""

from .core import Emulator, Request, Response
from .errors import StripeError
from .webhooks import sign

__all__ = ["Emulator", "Request", "Response", "StripeError", "sign"]
