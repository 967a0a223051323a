"""The evidence report's stylesheet, inlined into report.html so it needs no other file."""

CSS = """
:root{--ink:#1f2933;--muted:#61707f;--line:#d9dee4;--soft:#f4f6f8;--ok:#2f7d4f;--gate:#2f5f9e;
--bad:#b3261e;--skip:#9aa5b1;--wait:#c98a10}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--ink);font:14px/1.5 -apple-system,"Segoe UI",Roboto,
"Liberation Sans","DejaVu Sans",sans-serif}
main{max-width:1100px;margin:0 auto;padding:32px 40px 48px}
header{border-bottom:3px solid var(--ink);margin-bottom:8px}
.eyebrow{margin:0;color:var(--muted);text-transform:uppercase;letter-spacing:.08em;font-size:12px}
h1{margin:4px 0 12px;font-size:28px;font-weight:600}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:4px 0}
code{font:12.5px/1.4 "DejaVu Sans Mono","Liberation Mono",Menlo,monospace}
.hash{word-break:break-all;font-size:11.5px}
small{color:var(--muted)}
dl.grid{display:grid;grid-template-columns:160px 1fr;gap:4px 16px;margin:0}
dt{color:var(--muted)} dd{margin:0}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
thead th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line)}
tbody th{width:190px;font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}
tr.pending td{color:var(--muted)}
ul{margin:4px 0;padding-left:18px}
.soc2 ul{margin-top:6px}
.columns{display:grid;grid-template-columns:1fr 1fr;gap:24px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
background:var(--soft);color:var(--ink);border:1px solid var(--line);white-space:nowrap}
.badge.succeeded{background:#e7f3ec;color:var(--ok);border-color:#b9dcc7}
.badge.acknowledged{background:#e8eef7;color:var(--gate);border-color:#bccde6}
.badge.failed{background:#fbeaea;color:var(--bad);border-color:#efbdb9}
.badge.waiting,.badge.running{background:#fdf3e1;color:#8a5d05;border-color:#eed49f}
.badge.drill{background:var(--ink);color:#fff;border-color:var(--ink);letter-spacing:.05em}
figure{margin:0}
svg{width:100%;height:auto;display:block}
svg .grid{stroke:var(--line);stroke-width:1}
svg .tick,svg .caption{fill:var(--muted);font-size:11px}
svg .label{fill:var(--ink);font-size:12px}
svg .muted{fill:var(--skip)}
svg .resumed{stroke:var(--muted);stroke-dasharray:3 3;stroke-width:1}
svg rect.succeeded{fill:var(--ok)} svg rect.acknowledged{fill:var(--gate)}
svg rect.failed{fill:var(--bad)} svg rect.skipped{fill:var(--skip)}
svg rect.open{fill:#f6e3bb;stroke:var(--wait);stroke-dasharray:4 2}
.legend{display:flex;flex-wrap:wrap;gap:16px;font-size:12px;color:var(--muted);margin-top:6px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;
vertical-align:-2px;background:var(--skip)}
.swatch.succeeded{background:var(--ok)} .swatch.acknowledged{background:var(--gate)}
.swatch.failed{background:var(--bad)}
.swatch.waiting{background:#f6e3bb;border:1px dashed var(--wait)}
.swatch.resumed{background:none;border-left:2px dashed var(--muted);width:2px}
.notes{list-style:none;padding:0}
.notes li{margin-bottom:10px}
pre{background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:8px 10px;
margin:4px 0;white-space:pre-wrap;word-break:break-word;font-size:12px}
footer{margin-top:36px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);
padding-top:8px}
@media print{
@page{size:A4;margin:14mm}
main{padding:0;max-width:none}
body{font-size:11px}
h2{break-after:avoid}
tr,li,figure{break-inside:avoid}
a{color:inherit}
}
"""
