"""Datastores: JSON objects under key paths with compare-and-swap indexes."""

from pyln.errors import InvalidStoreData, KeyExists, KeyModified, KeyNotFound, StoreError
from pyln.store.base import (
    ANY,
    GLOBAL,
    LOCAL,
    Check,
    Delete,
    DeletePrefix,
    Entry,
    Put,
    Store,
    make_key,
)
from pyln.store.sqlite import SQLiteStore

__all__ = [
    "ANY",
    "GLOBAL",
    "LOCAL",
    "Check",
    "Delete",
    "DeletePrefix",
    "Entry",
    "InvalidStoreData",
    "KeyExists",
    "KeyModified",
    "KeyNotFound",
    "Put",
    "SQLiteStore",
    "Store",
    "StoreError",
    "make_key",
]
