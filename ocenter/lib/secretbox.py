"""
Secrets oCenter must read back (a pool's bearer token), encrypted at rest
with Fernet (AES-128-CBC + HMAC-SHA256). Several keys may be given, newest
first, so a key can be rotated: old ciphertexts still open, new ones use the
first key.
"""

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    """Encrypts and decrypts short strings with a list of keys."""

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_passphrase(cls, passphrase: str) -> "SecretBox":
        digest = hashlib.sha256(b"ocenter-secretbox:" + passphrase.encode()).digest()
        return cls([base64.urlsafe_b64encode(digest).decode()])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt: the encryption keys changed and the old key is not listed") from None


def new_token(prefix: str) -> str:
    """A random bearer token that says what it is for by its prefix."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"
