"""Interface texts: Chinese by default, English by setting."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "title": {"zh": "执法音像与文书档案", "en": "Enforcement evidence archive"},
    "login": {"zh": "登录", "en": "Sign in"},
    "logout": {"zh": "退出", "en": "Sign out"},
    "name": {"zh": "账号", "en": "Account"},
    "password": {"zh": "密码", "en": "Password"},
    "bad_login": {"zh": "账号或密码错误", "en": "Wrong account or password"},
    "throttled": {"zh": "失败次数过多，请稍后再试", "en": "Too many failures; try again later"},
    "search": {"zh": "案件检索", "en": "Find a case"},
    "search_hint": {"zh": "案号、案件编号、执法证号或日期", "en": "Case number, case key, officer or date"},
    "case": {"zh": "案件", "en": "Case"},
    "case_key": {"zh": "案件编号", "en": "Case key"},
    "status": {"zh": "状态", "en": "Status"},
    "opened": {"zh": "立案日期", "en": "Opened"},
    "time": {"zh": "时间", "en": "Time"},
    "item": {"zh": "共同编号", "en": "Item"},
    "kind": {"zh": "类别", "en": "Kind"},
    "officer": {"zh": "执法人员", "en": "Officer"},
    "archive_no": {"zh": "档案号", "en": "Archive no."},
    "doc_type": {"zh": "文书类型", "en": "Document"},
    "duration": {"zh": "时长", "en": "Duration"},
    "digest": {"zh": "SHA-256 摘要", "en": "SHA-256"},
    "device": {"zh": "执法记录仪", "en": "Device"},
    "original_name": {"zh": "原始文件名", "en": "Original name"},
    "storage_key": {"zh": "存储位置", "en": "Storage key"},
    "last_verified": {"zh": "最近校验", "en": "Last verified"},
    "verify_now": {"zh": "立即校验", "en": "Verify now"},
    "custody": {"zh": "保管链记录", "en": "Custody log"},
    "gaps": {"zh": "全过程记录缺口", "en": "Coverage gaps"},
    "no_gaps": {"zh": "无缺口", "en": "No gaps"},
    "export": {"zh": "导出证据包", "en": "Export package"},
    "download": {"zh": "下载", "en": "Download"},
    "open_document": {"zh": "查看文书", "en": "Open the record"},
    "download_only": {
        "zh": "此类文件不在浏览器中显示，请填写事由后下载",
        "en": "This kind of file is not shown in the browser: download it, giving a reason",
    },
    "reason": {"zh": "事由", "en": "Reason"},
    "protected": {
        "zh": "受保护记录（涉密/隐私），无权查看内容",
        "en": "Protected record (secret or private): no access to its content",
    },
    "hold": {"zh": "设置保全", "en": "Set legal hold"},
    "release": {"zh": "解除保全", "en": "Release hold"},
    "link": {"zh": "关联音像记录", "en": "Link recordings"},
    "unlink": {"zh": "取消关联", "en": "Unlink"},
    "users": {"zh": "账号管理", "en": "Accounts"},
    "role": {"zh": "角色", "en": "Role"},
    "add": {"zh": "添加", "en": "Add"},
    "end_sessions": {"zh": "结束其会话", "en": "End sessions"},
    "forbidden": {"zh": "无权访问", "en": "Not allowed"},
    "not_found": {"zh": "未找到", "en": "Not found"},
    "ok": {"zh": "完好", "en": "intact"},
    "mismatch": {"zh": "不一致", "en": "MISMATCH"},
    "missing": {"zh": "缺失", "en": "MISSING"},
    "no_proxy": {"zh": "暂无可播放版本", "en": "No playable version yet"},
    "cases_found": {"zh": "检索结果", "en": "Cases found"},
    "video": {"zh": "视频", "en": "video"},
    "audio": {"zh": "音频", "en": "audio"},
    "photo": {"zh": "照片", "en": "photo"},
    "document": {"zh": "文书", "en": "document"},
    "open": {"zh": "办理中", "en": "open"},
    "closed": {"zh": "已结案", "en": "closed"},
    "actor": {"zh": "操作人", "en": "Actor"},
    "action": {"zh": "操作", "en": "Action"},
    "details": {"zh": "详情", "en": "Details"},
}


def translator(language: str):
    def t(key: str) -> str:
        entry = TEXTS.get(key)
        return entry.get(language, entry["zh"]) if entry else key

    return t
