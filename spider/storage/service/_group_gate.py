"""The resource-group check of job calls: the caller proves it holds a group's password, and
sees and changes only that group's jobs (docs/security.md).

A credential is the group's password in the ``spider-resource-group-password-bin`` call
metadata, checked against the group the call is about; a caller may also name the group it
acts for in ``spider-resource-group`` (decimal id), and then gets PERMISSION_DENIED, not
UNAUTHENTICATED, for another group's jobs. Verifying a password is scrypt, tens
of milliseconds by design, so a verified credential is remembered (as a keyed hash, never the
password) and a later call with it costs one dictionary lookup. Wrong passwords are not
remembered: each costs a verification, as ``VerifyResourceGroup`` does.
"""

from __future__ import annotations

import collections
import hashlib
import secrets
from typing import Final

import attrs

from spider.core.ids import JobId, ResourceGroupId
from spider.rpc import current_metadata
from spider.rpc.auth import GROUP_ID_HEADER, GROUP_PASSWORD_HEADER
from spider.storage.errors import ForeignJob, InvalidResourceGroup, MissingGroupCredential
from spider.storage.service._unpack import MAX_STORED_ID
from spider.storage.state import StorageState

MAX_GROUP_ID_CHARS: Final = 20
"""A uint64 in decimal; a longer value is not an id."""
MAX_PASSWORD_BYTES: Final = 4096
"""A longer presented password is refused before any hashing."""
VERIFIED_CREDENTIALS_KEPT: Final = 4096
"""Verified credentials remembered, least recently used dropped first."""


class GroupGate:
    """Admits a job call if the password it carries is that of the resource group the call is
    about (the job's owner, or the group a job is registered into). With
    ``security.require_group_credentials`` off, or for an in-process call (a part of the same
    process, which carries no metadata), it admits every call at the cost of one attribute read.
    """

    def __init__(self, state: StorageState) -> None:
        self._state = state
        self.required = state.config.security.require_group_credentials
        self._key = secrets.token_bytes(32)
        self._verified: collections.OrderedDict[tuple[ResourceGroupId, bytes], None] = (
            collections.OrderedDict()
        )

    async def admit_group(self, group_id: ResourceGroupId) -> None:
        """A call that acts on ``group_id`` (registering a job into it)."""
        if not self.required:
            return
        credential = _credential()
        if credential is not None:
            await self._check(credential, group_id, f"resource group {group_id}")

    async def admit_listing(self, requested: ResourceGroupId | None) -> ResourceGroupId | None:
        """A listing of jobs: the group it may show (``requested``, or with credentials
        required the caller's own, which it must name); ``ForeignJob`` for another group's."""
        if not self.required:
            return requested
        credential = _credential()
        if credential is None:
            return requested
        if credential.group_id is None:
            raise MissingGroupCredential(
                f"listing jobs needs the caller's group id in {GROUP_ID_HEADER} metadata beside "
                "its password: a caller sees its own group's jobs only"
            )
        if requested is not None and requested != credential.group_id:
            raise ForeignJob(f"the listing of resource group {requested}", credential.group_id)
        await self._check(credential, credential.group_id, f"resource group {credential.group_id}")
        return credential.group_id

    async def admit_job(self, job_id: JobId) -> None:
        """A call about ``job_id``; ``JobNotFound`` for an unknown job."""
        if not self.required:
            return
        credential = _credential()
        if credential is not None:
            owner = await self._state.lifecycle.resource_group_of(job_id)
            await self._check(credential, owner, f"job {job_id}")

    async def _check(self, credential: _Credential, owner: ResourceGroupId, what: str) -> None:
        """``ForeignJob`` if the credential names a group other than ``owner``; else
        ``InvalidResourceGroup`` unless its password is ``owner``'s."""
        if credential.group_id is not None and credential.group_id != owner:
            raise ForeignJob(what, credential.group_id)
        # Keyed BLAKE2b (CPython's own code), not hmac.digest (OpenSSL's): a py-spy profile of
        # a secured cluster put most of the group check's samples in hmac.digest, a 3 us call
        # when timed alone; BLAKE2b takes 1 us. Why the HMAC showed so much was not found.
        digest = hashlib.blake2b(credential.password, key=self._key, digest_size=32).digest()
        key = (owner, digest)
        if key in self._verified:
            self._verified.move_to_end(key)
            return
        await self._state.verify_resource_group(owner, credential.password)
        self._verified[key] = None
        if len(self._verified) > VERIFIED_CREDENTIALS_KEPT:
            self._verified.popitem(last=False)


@attrs.frozen
class _Credential:
    password: bytes = attrs.field(repr=False)
    group_id: ResourceGroupId | None
    """The group the caller says it acts for, if it says."""


def _credential() -> _Credential | None:
    """The current call's credential; ``None`` for an in-process call.
    ``MissingGroupCredential`` when a served call has none or a malformed one."""
    metadata = current_metadata()
    if metadata is None:
        return None
    password = metadata.get(GROUP_PASSWORD_HEADER)
    raw_id = metadata.get(GROUP_ID_HEADER)
    if password is None:
        raise MissingGroupCredential("no resource group credential was sent")
    if not isinstance(password, bytes) or len(password) > MAX_PASSWORD_BYTES:
        raise MissingGroupCredential(
            f"a malformed resource group credential was sent ({GROUP_PASSWORD_HEADER}: at most "
            f"{MAX_PASSWORD_BYTES} bytes)"
        )
    if raw_id is None:
        return _Credential(password, None)
    if (
        not isinstance(raw_id, str)
        or not 0 < len(raw_id) <= MAX_GROUP_ID_CHARS
        or not raw_id.isascii()
        or not raw_id.isdigit()
    ):
        raise MissingGroupCredential(
            f"a malformed resource group credential was sent ({GROUP_ID_HEADER}: a group id "
            "in decimal)"
        )
    if int(raw_id) > MAX_STORED_ID:
        # Never issued: refused as an unknown group is, without saying which it was.
        raise InvalidResourceGroup()
    return _Credential(password, ResourceGroupId(int(raw_id)))
