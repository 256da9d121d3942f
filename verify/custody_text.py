"""Custody events as people read them: action names, labelled fields, local times.

Plain functions over values, used by the item, case and audit pages, the audit CSV, and the
case file (PDF). Chinese by default, English by the language setting. Nothing here is JSON:
a field is a label and a text, lists are joined, nested values are flattened into labelled
parts, so a reader never meets a brace, a quote or a ``\\u`` escape.

The labels cover the detail keys every writer uses, in both spellings the chain has carried
(seconds as ``*_s`` floats, milliseconds as ``*_ms`` integers); a key without a label is shown
under its own name, never dropped, because the record must stay complete.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from catalog.actions import Action
from catalog.chain import CustodyEvent

LANGUAGES = ("zh", "en")

# Every member of ``catalog.actions.Action`` (a test checks that none is missing).
ACTIONS: dict[str, tuple[str, str]] = {
    Action.INGESTED: ("采集入库", "ingested"),
    Action.STORED: ("存储确认", "stored"),
    Action.SEEN_AGAIN: ("重复采集（已有相同内容）", "seen again (same content already archived)"),
    Action.DERIVATIVE_STORED: ("生成派生文件", "derivative stored"),
    Action.LINK_FAILED: ("关联案件失败", "link to case failed"),
    Action.CASE_OPENED: ("立案登记", "case opened"),
    Action.CASE_CLOSED: ("结案", "case closed"),
    Action.DOCUMENT_ADDED: ("文书入卷", "document added"),
    Action.LINKED: ("关联到案件", "linked to case"),
    Action.UNLINKED: ("取消关联", "unlinked from case"),
    Action.HELD: ("设置保全", "legal hold set"),
    Action.RELEASED: ("解除保全", "legal hold released"),
    Action.VERIFIED: ("完整性校验", "verified"),
    Action.REPLAYED: ("案件回放", "case replayed"),
    Action.FIXITY_RUN: ("定期完整性巡检", "fixity sweep"),
    Action.RETENTION_RUN: ("保管期限处理", "retention run"),
    Action.METADATA_FILLED: ("补记元数据", "metadata filled in"),
    Action.DERIVATIVE_PRUNED: ("删除多余派生文件", "redundant derivative removed"),
    Action.FIXITY_PROBLEM: ("巡检发现问题", "fixity problem"),
    Action.EXPORTED: ("导出证据包", "evidence package exported"),
    Action.EXPORT_FAILED: ("导出失败", "export failed"),
    Action.CHECKPOINT: ("签署检查点", "checkpoint signed"),
    Action.KEY_ROTATED: ("更换签名密钥", "signing key rotated"),
    Action.KEY_RETIRED: ("停用泄露的签名密钥", "compromised signing key retired"),
    Action.ATTESTED: ("升级存证（监管链第 2 版）", "attested (custody version 2 upgrade)"),
    Action.PENDING_DELETION: ("到期待删除", "pending deletion"),
    Action.RETENTION_RUN: ("保留期限执行", "retention run"),
    Action.RESTORED: ("撤销待删除", "restored from pending deletion"),
    Action.PURGED: ("到期删除", "purged"),
    Action.KEK_ROTATED: ("更换密钥加密密钥", "key-encryption key rotated"),
    Action.KEYS_REWRAPPED: ("数据密钥重新封装（一批）", "data keys wrapped under the new key (one batch)"),
    Action.KEY_WRAPS_DELETED: ("删除已被取代的密钥封装", "superseded key wraps deleted"),
    Action.DEVICE_ASSIGNED: ("执法记录仪配发", "device assigned"),
    Action.USER_ADDED: ("新建账号", "account added"),
    Action.PASSWORD_CHANGED: ("修改密码", "password changed"),
    Action.LOGIN: ("登录", "signed in"),
    Action.LOGIN_FAILED: ("登录失败", "sign-in failed"),
    Action.LOGOUT: ("退出登录", "signed out"),
    Action.VIEWED: ("查看", "viewed"),
    Action.DOCUMENT_VIEWED: ("查阅文书内容", "written record opened"),
    Action.PLAYED: ("播放", "played"),
    Action.DOWNLOADED: ("下载", "downloaded"),
    Action.REFUSED: ("拒绝访问", "refused"),
    Action.REFUSED_ANONYMOUS: ("拒绝未登录访问", "refused (not signed in)"),
}

# Detail keys -> labels. Keys ending in ``_ms`` hold milliseconds, ``_s`` seconds.
LABELS: dict[str, tuple[str, str]] = {
    "reason": ("事由", "reason"),
    "sha256": ("SHA-256", "SHA-256"),
    "sm3": ("SM3", "SM3"),
    "size": ("大小", "size"),
    "original_name": ("原始文件名", "original name"),
    "station": ("采集站", "station"),
    "device": ("执法记录仪", "device"),
    "officer": ("执法人员", "officer"),
    "start_time": ("开始时间", "start time"),
    "start": ("开始时间", "start time"),
    "kind": ("类别", "kind"),
    "important": ("重要", "important"),
    "protected": ("受保护", "protected"),
    "damaged": ("文件受损", "damaged"),
    "sources": ("信息来源", "sources"),
    "key": ("存储位置", "storage key"),
    "version": ("存储版本", "storage version"),
    "stored_sha256": ("存储内容 SHA-256", "stored SHA-256"),
    "stored_size": ("存储大小", "stored size"),
    "etag": ("ETag", "ETag"),
    "encrypted": ("已加密", "encrypted"),
    "retain_until": ("保留至", "retained until"),
    "lock_mode": ("锁定模式", "lock mode"),
    "method": ("方式", "method"),
    "path": ("路径", "path"),
    "case": ("案件", "case"),
    "case_key": ("案件代码", "case key"),
    "number": ("案号", "case number"),
    "item_no": ("共同编号", "item number"),
    "item_nos": ("共同编号", "item numbers"),
    "archive_no": ("档案号", "archive number"),
    "numbers": ("编号", "numbers"),
    "title": ("案由", "title"),
    "type": ("案件类型", "case type"),
    "unit": ("单位", "unit"),
    "opened_on": ("立案日期", "opened on"),
    "closed_on": ("结案日期", "closed on"),
    "major": ("重大案件", "major case"),
    "doc_type": ("文书类型", "document type"),
    "doc_number": ("文书编号", "document number"),
    "doc_date": ("文书日期", "document date"),
    "objects": ("对象数", "objects"),
    "still_held_by_other_holds": ("仍由其他保全锁定", "still held by other holds"),
    "result": ("结果", "result"),
    "verify": ("同时校验", "with verification"),
    "items": ("条目数", "items"),
    "problems": ("问题", "problems"),
    "problem": ("问题", "problem"),
    "expected": ("应为", "expected"),
    "found": ("实为", "found"),
    "checked": ("已检查", "checked"),
    "ok": ("完好", "intact"),
    "bytes": ("读取字节", "bytes read"),
    "stopped_by": ("中止原因", "stopped by"),
    "results_key": ("结果存储位置", "results key"),
    "results_sha256": ("结果 SHA-256", "results SHA-256"),
    "destination": ("导出文件", "destination"),
    "with_proxies": ("含播放版本", "with proxies"),
    "withheld": ("未提供的条目", "withheld items"),
    "withheld_why": ("未提供原因", "withheld because"),
    "export_event": ("导出事件", "export event"),
    "error": ("错误", "error"),
    "n": ("检查点序号", "checkpoint"),
    "seq": ("事件序号", "event"),
    "head": ("链头哈希", "chain head"),
    "key_id": ("签名密钥", "key id"),
    "signer": ("签名密钥指纹", "signing key fingerprint"),
    "old": ("原签名密钥指纹", "old key fingerprint"),
    "new": ("新签名密钥指纹", "new key fingerprint"),
    "statement": ("声明 SHA-256", "statement SHA-256"),
    "compromised_since": ("泄露起始时间", "compromised since"),
    "by": ("声明签名密钥", "signed by key"),
    "retired": ("停用的签名密钥指纹", "retired key fingerprint"),
    "lost": ("原密钥遗失", "old key lost"),
    "files": ("导出文件摘要", "exported files' digests"),
    "events": ("披露的事件", "disclosed events"),
    "withheld_events": ("未披露的事件", "withheld events"),
    "heads": ("各对象最后事件", "last event of each subject"),
    "due_at": ("到期时间", "due at"),
    "deleted": ("已删除对象", "deleted objects"),
    "from": ("起", "from"),
    "to": ("止", "to"),
    "role": ("角色", "role"),
    "sessions_ended": ("结束会话数", "sessions ended"),
    "source": ("来源地址", "source address"),
    "minute": ("分钟", "minute"),
    "count": ("次数", "count"),
    "page": ("页面", "page"),
    "protected_shown": ("内容已显示", "content shown"),
    "route": ("访问路径", "route"),
    "why": ("原因", "why"),
    "start_s": ("开始位置", "start position"),
    "start_ms": ("开始位置", "start position"),
    "watched_s": ("观看时长", "watched"),
    "watched_ms": ("观看时长", "watched"),
    "duration_s": ("时长", "duration"),
    "duration_ms": ("时长", "duration"),
    "rows": ("行数", "rows"),
    "filters": ("筛选条件", "filters"),
    "actor": ("操作人", "actor"),
    "action": ("操作", "action"),
    "subject": ("对象", "subject"),
    "period_from": ("起始日期", "from"),
    "period_to": ("截止日期", "to"),
    "printed": ("打印内容", "printed"),
    "format": ("格式", "format"),
    "content_type": ("内容类型", "content type"),
}

# Values that are words, not data: translated where they stand alone.
WORDS: dict[str, tuple[str, str]] = {
    "ok": ("完好", "intact"),
    "mismatch": ("不一致", "mismatch"),
    "missing": ("缺失", "missing"),
    "video": ("视频", "video"),
    "audio": ("音频", "audio"),
    "photo": ("照片", "photo"),
    "document": ("文书", "document"),
    "proxy": ("播放版本", "proxy"),
    "poster": ("封面", "poster"),
    "sheet": ("缩略图", "contact sheet"),
    "waveform": ("波形图", "waveform"),
    "item": ("条目页", "item page"),
    "auditor": ("审计员", "auditor"),
    "legal": ("法制审核员", "legal reviewer"),
    "admin": ("管理员", "administrator"),
    "protected": ("受保护", "protected"),
    "compliance": ("合规（不可删除）", "compliance"),
    "governance": ("治理", "governance"),
    "remux": ("重新封装", "remux"),
    "transcode": ("转码", "transcode"),
    "frame": ("截取画面", "frame"),
    "keyframes": ("关键帧拼图", "keyframes"),
}
# Where an ingested value came from (``sources``).
SOURCE_WORDS: dict[str, tuple[str, str]] = {
    "filename": ("文件名", "file name"),
    "folder": ("文件夹名", "folder name"),
    "sn.txt": ("sn.txt", "sn.txt"),
    "container": ("媒体文件内时间", "container"),
    "file_time": ("文件修改时间", "file time"),
    "assignment": ("执法记录仪配发记录", "device assignment"),
    "sidecar": ("伴随文件", "sidecar"),
    "ffprobe": ("媒体元数据", "ffprobe"),
    "exif": ("照片 EXIF", "EXIF"),
}
_WORD_KEYS = frozenset({"result", "kind", "role", "lock_mode", "problem", "withheld_why", "method"})
# ``page=case`` is the case page; the word "case" elsewhere is a case key's label.
PAGES: dict[str, tuple[str, str]] = {
    "case": ("案件页", "case page"),
    "item": ("条目页", "item page"),
    "audit": ("审计页", "audit page"),
}

ACTOR_KINDS: dict[str, tuple[str, str]] = {
    "web": ("网页账号", "web account"),
    "station": ("采集站", "station"),
    "worker": ("转码节点", "worker"),
    "user": ("账号", "account"),
    "checkpoint": ("检查点", "checkpoint"),
}

_ORDER = {key: n for n, key in enumerate(LABELS)}

YES_NO = {True: ("是", "yes"), False: ("否", "no")}
SEP = {"zh": "；", "en": "; "}
LIST_SEP = {"zh": "、", "en": ", "}
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
# Characters that would make a spreadsheet run a formula when a CSV cell starts with them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def action_name(action: str, lang: str = "zh") -> str:
    """The action's name in the language; an unknown action (from a newer writer) as itself."""
    pair = ACTIONS.get(action)
    return _pick(pair, lang) if pair else action


def label(key: str, lang: str = "zh") -> str:
    pair = LABELS.get(key)
    return _pick(pair, lang) if pair else key


def local_time(moment: datetime | None, zone: ZoneInfo, *, offset: bool = False) -> str:
    """``2020-11-05 08:50:56`` in the zone (to the second); with ``offset``, ``… +08:00``."""
    if moment is None:
        return ""
    here = moment.astimezone(zone)
    text = here.strftime("%Y-%m-%d %H:%M:%S")
    if offset:
        text += " " + here.strftime("%z")[:3] + ":" + here.strftime("%z")[3:]
    return text


def zone_offset(moment: datetime, zone: ZoneInfo) -> str:
    """``UTC+08:00``: the offset a column of local times is in (for its heading)."""
    z = moment.astimezone(zone).strftime("%z")
    return f"UTC{z[:3]}:{z[3:]}"


def actor_text(actor: str, lang: str = "zh") -> str:
    """``web:zhang`` -> ``网页账号 zhang``; an actor without a known kind as itself."""
    kind, sep, name = actor.partition(":")
    if sep and kind in ACTOR_KINDS:
        return f"{_pick(ACTOR_KINDS[kind], lang)} {name}"
    return actor


def _duration(seconds: float, lang: str) -> str:
    whole = int(seconds)
    fraction = seconds - whole
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s + fraction:.1f}".rstrip("0").rstrip(".") if fraction else str(s)
    if lang == "en":
        parts = [f"{h} h"] * bool(h) + [f"{m} min"] * bool(m) + [f"{sec} s"]
        return " ".join(parts)
    return "".join([f"{h}小时"] * bool(h) + [f"{m}分"] * bool(m) + [f"{sec}秒"])


def _size(n: int, lang: str) -> str:
    if n < 1024:
        return f"{n} B"
    value, unit = float(n), "B"
    for name in ("KB", "MB", "GB", "TB"):
        value, unit = value / 1024, name
        if value < 1024:
            break
    return f"{value:.1f} {unit}（{n:,} B）" if lang == "zh" else f"{value:.1f} {unit} ({n:,} B)"


def value_text(key: str, value: Any, lang: str, zone: ZoneInfo) -> str:
    """One detail value as text: times local, durations and sizes in units, words translated."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _pick(YES_NO[value], lang)
    if isinstance(value, int | float) and key.endswith("_ms"):
        return _duration(value / 1000, lang)
    if isinstance(value, int | float) and key.endswith("_s"):
        return _duration(float(value), lang)
    if isinstance(value, int) and key in ("size", "stored_size", "bytes"):
        return _size(value, lang)
    if isinstance(value, list):
        return LIST_SEP[lang].join(value_text(key, v, lang, zone) for v in value) or "—"
    if isinstance(value, Mapping) and key == "sources":
        return SEP[lang].join(
            f"{label(str(k), lang)}: {_pick(SOURCE_WORDS[v], lang) if v in SOURCE_WORDS else v}"
            for k, v in value.items()
        )
    if isinstance(value, Mapping):
        return SEP[lang].join(
            f"{label(str(k), lang)}: {value_text(str(k), v, lang, zone)}" for k, v in value.items()
        )
    text = str(value)
    if _INSTANT.match(text):
        try:
            return local_time(datetime.fromisoformat(text.replace("Z", "+00:00")), zone, offset=True)
        except ValueError:
            return text
    if key == "page" and text in PAGES:
        return _pick(PAGES[text], lang)
    if key in _WORD_KEYS and text.lower() in WORDS:
        return _pick(WORDS[text.lower()], lang)
    return text


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    text: str


@dataclass(frozen=True)
class EventText:
    """One custody event as people read it."""

    seq: int
    time: str
    actor: str
    action: str  # the name in the language
    action_code: str  # what the chain stores
    subject: str
    fields: tuple[Field, ...]
    hash: str

    def details_text(self, lang: str = "zh") -> str:
        return SEP[lang].join(f"{f.label}: {f.text}" for f in self.fields)


REDACTED = ("（受保护记录）", "(protected record)")


def fields(
    details: Mapping[str, Any], lang: str, zone: ZoneInfo, *, hidden: Collection[str] = ()
) -> tuple[Field, ...]:
    """Labelled fields in the order of ``LABELS`` (the chain stores keys sorted by name, which
    reads at random), unknown keys last; a value naming a ``hidden`` record is redacted."""
    ordered = sorted(details.items(), key=lambda kv: (_ORDER.get(kv[0], len(_ORDER)), kv[0]))
    return tuple(
        Field(key, label(key, lang), value_text(key, _redact(value, hidden, lang), lang, zone))
        for key, value in ordered
    )


def _redact(value: Any, hidden: Collection[str], lang: str) -> Any:
    if not hidden:
        return value
    if isinstance(value, str) and value in hidden:
        return _pick(REDACTED, lang)
    if isinstance(value, list):
        return [_redact(v, hidden, lang) for v in value]
    if isinstance(value, Mapping):
        return {k: _redact(v, hidden, lang) for k, v in value.items()}
    return value


def describe(event: CustodyEvent, lang: str, zone: ZoneInfo, *, hidden: Collection[str] = ()) -> EventText:
    """The event for a page or a file; values naming ``hidden`` records are redacted."""
    return EventText(
        seq=event.seq,
        time=local_time(event.time, zone),
        actor=actor_text(event.actor, lang),
        action=action_name(event.action, lang),
        action_code=event.action,
        subject=_pick(REDACTED, lang) if event.subject in hidden else (event.subject or ""),
        fields=fields(event.details, lang, zone, hidden=hidden),
        hash=event.hash,
    )


def describe_all(
    events: Iterable[CustodyEvent], lang: str, zone: ZoneInfo, *, hidden: Collection[str] = ()
) -> list[EventText]:
    return [describe(e, lang, zone, hidden=hidden) for e in events]


def csv_cell(text: str) -> str:
    """A cell a spreadsheet shows as text: a leading formula character gets a quote before it."""
    return "'" + text if text.startswith(_FORMULA_START) else text
