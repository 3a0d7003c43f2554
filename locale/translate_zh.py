"""Fill locale/zh_Hans/LC_MESSAGES/django.po from the table below, then compile it.

Run after `manage.py makemessages -l zh_Hans` (see README: "Customer invoice page and PDFs"):
    .venv/bin/python locale/translate_zh.py && .venv/bin/python manage.py compilemessages -l zh_Hans
Keeping the translations in one table makes a re-extraction lossless and reviewable.
"""

import re
import sys
from pathlib import Path

PO = Path(__file__).resolve().parent / "zh_Hans" / "LC_MESSAGES" / "django.po"

ZH = {
    # Plans and add-ons (by code in invoices/templatetags/invoice_text.py)
    "Free": "免费版",
    "Premium": "尊享版",
    "Ultimate": "至尊版",
    "Chat room keep-alive": "聊天室保活",
    "Chat room global mute": "聊天室全体禁言",
    "Chat room message priority (up to 20 low-priority message types)": "聊天室消息优先级（最多 20 种低优先级消息类型）",
    "Chat room user and message whitelist": "聊天室用户及消息白名单",
    "Chat room broadcast messages": "聊天室广播消息",
    "Message callback": "消息回调",
    "Push content template setting": "推送内容模板设置",
    "Desktop (PC) client": "桌面端（PC）",
    "1-to-1 and group message cloud storage, 6 months": "单聊、群聊消息云存储（6 个月）",
    "Extend 1-to-1 and group message cloud storage": "延长单聊、群聊消息云存储",
    "Chat room message cloud storage, 2 months": "聊天室消息云存储（2 个月）",
    "Extend chat room message cloud storage": "延长聊天室消息云存储",
    "Extend ultragroup message cloud storage": "延长超级群消息云存储",
    "Extra sensitive words (50 included)": "额外敏感词（已含 50 个）",
    "%(plan)s plan, monthly fee by peak DAU": "%(plan)s套餐，按峰值日活计算的月费",
    "Dedicated service (high-volume contract)": "专属服务（高消息量合同）",
    "API rate limit %(endpoint)s": "API 调用频率提升 %(endpoint)s",
    # Statuses and ledger kinds
    "Draft": "草稿",
    "Held for review": "待审核",
    "Issued": "已开具",
    "Partly credited": "部分冲减",
    "Credited": "已冲减",
    "Deposit": "充值",
    "Invoice": "账单",
    "Credit note": "贷项通知单",
    "Refund": "退款",
    "Adjustment": "调整",
    # Layout
    "Billing": "账单中心",
    "Sections": "栏目",
    "Invoices": "账单",
    "Balance": "余额",
    "This month": "本月",
    "Account ID": "账户 ID",
    "Log out": "退出登录",
    "Amounts are in Chinese yuan (CNY). Questions about a bill: %(email)s": "金额单位为人民币（CNY）。账单问题请联系：%(email)s",
    "How the amounts are calculated": "金额如何计算",
    "Each application is billed on its own. Its monthly fee depends on its peak daily active users (DAU): the highest DAU of any day in the month. The fee covers up to 10,000 DAU; every started 10,000 above that adds a block fee.": "每个应用单独计费。月费取决于该应用当月的峰值日活（DAU），即当月日活最高一天的数值。基础月费包含 10,000 日活；超出部分每（不足）10,000 日活加收一档费用。",
    "Value-added services and add-ons are monthly. Services included in your plan are listed at ¥0.00.": "增值服务和附加项按月计费。套餐已包含的服务以 ¥0.00 列出。",
    "A plan or service active for only part of the month is charged pro rata by day: monthly amount × active days ÷ days in the month. A plan change splits the month, each part priced by its own plan and its own peak DAU.": "当月只开通部分天数的套餐或服务按天折算：月费 × 开通天数 ÷ 当月天数。变更套餐会把当月分成几段，每段按各自的套餐和该段的峰值日活计费。",
    "Each line is rounded to the cent once; the total is the sum of the lines.": "每行金额四舍五入到分，合计为各行之和。",
    "Plan": "套餐",
    "Item": "项目",
    "Days": "天数",
    "Qty": "数量",
    "Unit price": "单价",
    "Amount": "金额",
    "%(days)s of %(month)s days": "%(days)s/%(month)s 天",
    "Subtotal for %(app)s": "%(app)s 小计",
    "No billable lines.": "没有计费项目。",
    # Arrears
    "Your service is suspended": "您的服务已暂停",
    "Your prepaid balance has been below zero since %(since)s. It was not restored within 7 days, so all your applications were suspended on %(suspended_on)s.": "您的预付余额自 %(since)s 起低于零，且未在 7 天内补足，因此您的所有应用已于 %(suspended_on)s 暂停服务。",
    "What to do": "如何恢复",
    "Top up your prepaid balance by at least <strong>%(owed)s</strong> (the amount you owe), quoting your account ID <strong>%(account)s</strong> as the payment reference.": "请至少充值 <strong>%(owed)s</strong>（即欠费金额），付款备注请填写您的账户 ID <strong>%(account)s</strong>。",
    "As soon as the deposit is recorded and your balance is zero or above, all your applications are reactivated automatically. Nothing else is needed.": "充值入账、余额不低于零后，您的所有应用会立即自动恢复服务，无需其他操作。",
    "To keep the service running next month, top up to the recommended balance shown on the Balance page. Questions: %(email)s.": "为保证下月服务不中断，请充值到“余额”页面显示的建议余额。如有疑问请联系：%(email)s。",
    "Your balance is negative: %(balance)s": "您的余额为负：%(balance)s",
    "Your balance has been below zero since %(since)s. Service for all your applications is being suspended as of %(date)s.": "您的余额自 %(since)s 起低于零。自 %(date)s 起，您所有应用的服务正在被暂停。",
    "To avoid this, top up at least <strong>%(owed)s</strong> by %(last_day)s, quoting your account ID <strong>%(account)s</strong> as the payment reference.": "为避免停服，请在 %(last_day)s 前至少充值 <strong>%(owed)s</strong>，付款备注请填写您的账户 ID <strong>%(account)s</strong>。",
    "See your balance": "查看余额",
    # Balance page
    "Prepaid balance": "预付余额",
    "Deposits add to your balance; each issued invoice is deducted from it on the 2nd of the month.": "充值计入余额；每月 2 日开具的账单从余额中扣除。",
    "Current balance": "当前余额",
    "as of %(date)s": "截至 %(date)s",
    "Recommended balance": "建议余额",
    "three months of your current monthly fees (%(fees)s a month)": "按当前月费计算的三个月费用（每月 %(fees)s）",
    "Balance lasts": "余额可用",
    "no monthly fees at the moment": "目前没有月费",
    "at the current monthly fees": "按当前月费计算",
    "The monthly fee estimate is not available right now; the balance and ledger below are up to date.": "暂时无法估算月费；下方的余额和流水是最新的。",
    "We recommend keeping at least %(recommended)s on your account. Top up %(amount)s to reach it, quoting your account ID %(account)s as the payment reference.": "建议账户余额至少保持 %(recommended)s。再充值 %(amount)s 即可达到，付款备注请填写您的账户 ID %(account)s。",
    "Ledger": "余额流水",
    "Every change to your balance, newest first.": "余额的每一笔变动，最新的在前。",
    "Date": "日期",
    "Type": "类型",
    "Reference": "参考号",
    "No entries yet.": "暂无流水。",
    # Credit note page
    "Issued %(issued)s": "开具于 %(issued)s",
    "Credits invoice": "对应账单",
    "Download PDF": "下载 PDF",
    "Total credited": "冲减合计",
    "Reason": "原因",
    "Credited to balance": "退回余额",
    "on %(date)s": "（%(date)s）",
    "Balance after it": "之后余额",
    "Application": "应用",
    "Billed": "原金额",
    # Estimate page
    "%(period)s so far": "%(period)s至今",
    "Estimate": "估算",
    "Day %(day)s of %(days)s": "第 %(day)s 天，共 %(days)s 天",
    "This is an estimate, not a bill": "这是估算，不是账单",
    "It prices the whole month with your plans and services as they are today and the usage received up to %(through)s.": "按您当前的套餐和服务计算整月费用，用量数据截至 %(through)s。",
    "It prices the whole month with your plans and services as they are today; no usage has been received for this month yet.": "按您当前的套餐和服务计算整月费用；本月尚未收到用量数据。",
    "The invoice is issued on %(date)s from the month's real peak DAU, and may differ: a higher peak later this month raises it.": "正式账单将于 %(date)s 按当月实际峰值日活开具，金额可能不同：本月后续出现更高峰值会使费用增加。",
    "The estimate is not available right now. Please try again later.": "暂时无法估算，请稍后再试。",
    "Estimated total for the month": "本月估算合计",
    "deducted from your balance when the invoice is issued": "开具账单时从余额扣除",
    "lower than this estimate: top up to avoid a negative balance": "低于本估算：请充值以免余额变为负数",
    "covers this estimate": "足以支付本估算",
    "An application sent more messages in a day than its plan allows (high volume). Such applications are billed by a dedicated-service contract; finance will contact you and the invoice waits for that review.": "有应用的单日下发消息量超过套餐上限（高消息量）。此类应用按专属服务合同计费；财务人员会联系您，账单将在审核后开具。",
    # Invoice pages
    "Billing period %(period)s · issued %(issued)s": "账期 %(period)s · 开具于 %(issued)s",
    "Summary": "概要",
    "Total": "合计",
    "Billing period": "账期",
    "Applications": "应用数",
    "Debited from balance": "已从余额扣除",
    "Nothing (no amount due)": "无（无应付金额）",
    "Billed to": "客户信息",
    "Tax ID": "税号",
    "Credit notes on this invoice": "本账单的贷项通知单",
    "Invoices and credit notes": "账单与贷项通知单",
    "%(name)s · account %(account)s": "%(name)s · 账户 %(account)s",
    "Ledger and recommended balance": "余额流水与建议余额",
    "This month so far": "本月至今",
    "Issued on the 2nd of each month for the month before, and deducted from your prepaid balance.": "每月 2 日开具上月账单，并从预付余额中扣除。",
    "Number": "编号",
    "Period": "账期",
    "Status": "状态",
    "Download": "下载",
    "No invoices yet. Your first invoice is issued on the 2nd of the month after your first paid month.": "暂无账单。首个付费月份结束后的次月 2 日将开具第一张账单。",
    "Credit notes": "贷项通知单",
    "Corrections to an invoice, credited back to your balance.": "对账单的更正，冲减金额退回余额。",
    "No credit notes.": "暂无贷项通知单。",
    "No customer account": "没有客户账户",
    "This login is not linked to a customer account, so there are no invoices to show. Finance staff use the administration site.": "此登录账号未关联客户账户，因此没有可显示的账单。财务人员请使用管理后台。",
    "Newer": "较新",
    "Page %(number)s of %(pages)s": "第 %(number)s 页，共 %(pages)s 页",
    "Older": "较早",
    # Authentication
    "Too many attempts": "尝试次数过多",
    "Too many failed logins": "登录失败次数过多",
    "Please wait an hour and try again, or reset your password by e-mail.": "请一小时后再试，或通过电子邮件重置密码。",
    "Reset your password": "重置密码",
    "Log in": "登录",
    "Your invoices, credit notes and prepaid balance.": "查看您的账单、贷项通知单和预付余额。",
    "Username": "用户名",
    "Password": "密码",
    "Forgot your password?": "忘记密码？",
    "Password changed": "密码已修改",
    "Your new password is set. You can log in with it now.": "新密码已设置，现在可以用它登录。",
    "Choose a new password": "设置新密码",
    "New password": "新密码",
    "New password again": "再次输入新密码",
    "Set the password": "设置密码",
    "This link has expired": "链接已失效",
    "The password reset link was already used or is too old.": "该密码重置链接已使用或已过期。",
    "Send a new link": "重新发送链接",
    "Check your e-mail": "请查收邮件",
    "If the address belongs to a customer login, we have sent it a link to choose a new password. It may take a few minutes to arrive; check your spam folder too.": "如果该地址属于某个客户登录账号，我们已向其发送设置新密码的链接。邮件可能需要几分钟才能送达，也请检查垃圾邮件文件夹。",
    "Back to log in": "返回登录",
    "Hello %(username)s,\n\nSomeone asked to reset the password of your billing login. If it was you, choose a new password here:": "%(username)s，您好：\n\n有人申请重置您的账单中心登录密码。如果是您本人，请在这里设置新密码：",
    "If you did not ask for it, ignore this e-mail: your password stays as it is.": "如果不是您本人申请，请忽略此邮件，您的密码不会改变。",
    "Enter the e-mail address of your login. We will send you a link to choose a new password.": "请输入登录账号的电子邮件地址，我们会发送设置新密码的链接。",
    "E-mail": "电子邮件",
    "Send the link": "发送链接",
    "Reset your billing password": "重置账单中心密码",
}

# Plural messages (Chinese has one form).
ZH_PLURAL = {
    "Your balance has been below zero since %(since)s. Unless it is back to zero or above, service for all your applications will be suspended on <strong>%(date)s</strong> (in %(days)s day).": "您的余额自 %(since)s 起低于零。如果余额未恢复到零或以上，您所有应用的服务将于 <strong>%(date)s</strong> 暂停（还剩 %(days)s 天）。",
    "%(days)s day": "%(days)s 天",
    "This account is locked after %(limit)s failed attempt to protect it from password guessing.": "为防止密码被猜测，该账号在 %(limit)s 次登录失败后已被锁定。",
}


def _unquote(lines: list[str]) -> str:
    text = "".join(
        re.match(r'^(?:msgid|msgid_plural|msgstr(?:\[\d\])?)?\s*"(.*)"$', line)[1] for line in lines
    )
    return text.encode("raw_unicode_escape").decode("unicode_escape")


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def main() -> int:
    header, *blocks = PO.read_text(encoding="utf-8").split("\n\n")
    header = re.sub(r'"Plural-Forms: [^"]*"', '"Plural-Forms: nplurals=1; plural=0;\\\\n"', header)
    header = header.replace('"Language: \\n"', '"Language: zh_Hans\\n"')
    # A fuzzy header is dropped by msgfmt, and with it the one-form plural rule.
    header = header.replace("#, fuzzy\n", "")
    header = header.replace("Project-Id-Version: PACKAGE VERSION", "Project-Id-Version: im-billing")
    missing, out = [], [header]
    for block in blocks:
        lines = block.splitlines()
        comments = [line for line in lines if line.startswith("#")]
        body = [line for line in lines if not line.startswith("#")]
        if not body:
            out.append(block)
            continue
        sections: dict[str, list[str]] = {}
        key = None
        for line in body:
            head = line.split(" ", 1)[0]
            if head.startswith(("msgid", "msgstr")):
                key = head
                sections[key] = [line]
            else:
                sections[key].append(line)
        msgid = _unquote(sections["msgid"])
        plural = "msgid_plural" in sections
        table = ZH_PLURAL if plural else ZH
        if msgid not in table:
            missing.append(msgid)
            out.append(block)
            continue
        kept = [
            line for key, lines in sections.items() if key.startswith("msgid") for line in lines
        ]
        new = [*comments, *kept]
        new = [line for line in new if line != "#, fuzzy"]
        new.append(
            f"msgstr[0] {_quote(table[msgid])}" if plural else f"msgstr {_quote(table[msgid])}"
        )
        out.append("\n".join(new))
    PO.write_text("\n\n".join(out), encoding="utf-8")
    for msgid in missing:
        print(f"untranslated: {msgid!r}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
