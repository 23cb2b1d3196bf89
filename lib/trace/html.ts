// A job as one self-contained HTML file (no network, no external script): a zoomable timeline of
// its processes in tree order, a collapsible tree with search, a process's details on click.
// Pure: a summary in, the page out. The data goes in as JSON text (never as markup), and the
// page builds its elements with textContent, so no argv can inject anything.
import type { JobSummary } from './summary';

const STYLE = `
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{padding:8px 12px;background:#f4f4f4;border-bottom:1px solid #ddd}
header h1{font-size:15px;margin:0 0 4px}
#warn{color:#b00;font-weight:bold}
main{display:flex;height:calc(100vh - 70px)}
#left{width:45%;overflow:auto;border-right:1px solid #ddd}
#right{flex:1;display:flex;flex-direction:column;min-width:0}
#search{margin:6px;width:calc(100% - 20px);padding:3px}
.row{white-space:nowrap;cursor:pointer;padding:1px 6px;font-family:ui-monospace,monospace;font-size:12px}
.row:hover,.row.sel{background:#e8f0fe}
.row.failed,.bar.failed{color:#b00}
.tog{display:inline-block;width:1em}
.meta{color:#777}
#timeline{flex:1;overflow:hidden;position:relative;border-bottom:1px solid #ddd;cursor:grab}
#timeline svg{display:block}
.bar{fill:#4a7fd4}.bar.failed{fill:#d44a4a}.bar.running{fill:#8a8a8a}.bar.sel{stroke:#000;stroke-width:1.5}
.lbl{font:10px ui-monospace,monospace;fill:#fff;pointer-events:none}
#details{height:34%;overflow:auto;padding:6px 12px;font-family:ui-monospace,monospace;font-size:12px}
#details ol{margin:2px 0 6px 1.5em;padding:0}
`;

const SCRIPT = `
(function(){
var S=JSON.parse(document.getElementById('data').textContent);
var nodes=[],t0=Date.parse(S.start),t1=Date.parse(S.end);
(function walk(n,d,parent){n.depth=d;n.parent=parent;n.i=nodes.length;nodes.push(n);n.open=true;
 n.s=(Date.parse(n.start)-t0);n.e=n.end?Date.parse(n.end)-t0:Math.max(n.s,t1-t0);if(n.e>t1-t0)t1=t0+n.e;
 n.children.forEach(function(c){walk(c,d+1,n)})})(S.tree,0,null);
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!==undefined)e.textContent=text;return e}
function sh(a){return a.map(function(x){return x===''?"''":(/[^\\w@%+=:,.\\/-]/.test(x)?"'"+x.replace(/'/g,"'\\\\''")+"'":x)}).join(' ')}
function dur(ms){if(ms===null)return 'running';if(ms<1000)return Math.round(ms)+' ms';if(ms<60000)return (ms/1000).toFixed(2)+' s';return Math.floor(ms/60000)+' min '+Math.round(ms%60000/1000)+' s'}
function outcome(n){if(!n.end)return 'running';if(n.signal)return n.signal+(n.core?' (core)':'');return 'exit '+n.code}
var h=document.getElementById('head');
h.appendChild(el('h1','', 'trace: '+sh(S.command)));
h.appendChild(el('div','', outcome({end:S.end,code:S.code,signal:S.signal})+' after '+dur(S.duration_ms)+'; '+S.processes+' processes, '+S.failed+' failed, '+S.leftovers.length+' left running, '+S.lost+' events lost'));
if(!S.complete)h.appendChild(el('div','', 'events were lost while the job ran: this tree may be incomplete')).id='warn';
var tree=document.getElementById('tree'),search=document.getElementById('search'),sel=-1,rows=[],bars=[];
function visible(n){for(var p=n.parent;p;p=p.parent)if(!p.open)return false;return true}
function matches(n,q){return !q||sh(n.argv).toLowerCase().indexOf(q)>=0||String(n.pid)===q}
function render(){var q=search.value.trim().toLowerCase();tree.textContent='';rows=[];
 nodes.forEach(function(n){var show=q?matches(n,q):visible(n);if(!show)return;
  var r=el('div','row'+(n.failed?' failed':'')+(n.i===sel?' sel':''));r.dataset.index=n.i;r.style.paddingLeft=(6+(q?0:n.depth*14))+'px';
  r.appendChild(el('span','tog',n.children.length&&!q?(n.open?'\\u25be':'\\u25b8'):''));
  r.appendChild(el('span','', n.pid+' '+sh(n.argv)+' '));r.appendChild(el('span','meta',dur(n.duration_ms)+', '+outcome(n)));
  r.onclick=function(ev){if(ev.target.className==='tog'&&n.children.length){n.open=!n.open;render();draw();return}pick(n.i)};
  tree.appendChild(r);rows.push(r)});}
search.oninput=function(){render();draw()};
var tl=document.getElementById('timeline'),NS='http://www.w3.org/2000/svg',view={from:0,to:Math.max(1,t1-t0)};
function draw(){var w=tl.clientWidth||800,q=search.value.trim().toLowerCase(),shown=nodes.filter(function(n){return q?matches(n,q):visible(n)}),rh=14;
 var svg=document.createElementNS(NS,'svg');svg.setAttribute('width',w);svg.setAttribute('height',Math.max(tl.clientHeight,shown.length*rh+20));
 var k=w/(view.to-view.from);bars=[];
 shown.forEach(function(n,j){var x=(n.s-view.from)*k,x2=(n.e-view.from)*k;if(x2<0||x>w)return;
  var b=document.createElementNS(NS,'rect');b.setAttribute('x',Math.max(-1,x));b.setAttribute('y',j*rh+2);b.setAttribute('width',Math.max(1,Math.min(w+1,x2)-Math.max(-1,x)));b.setAttribute('height',rh-3);
  b.setAttribute('class','bar'+(n.failed?' failed':'')+(n.end?'':' running')+(n.i===sel?' sel':''));b.dataset.index=n.i;
  var t=document.createElementNS(NS,'title');t.textContent=n.pid+' '+sh(n.argv)+' ('+dur(n.duration_ms)+', '+outcome(n)+')';b.appendChild(t);
  b.addEventListener('click',function(){pick(n.i)});svg.appendChild(b);bars.push(b);
  var room=Math.floor((Math.min(w,x2)-Math.max(0,x)-6)/6.2),name=n.argv[0]?n.argv[0].split('/').pop():n.comm;
  if(room>=3){var lb=document.createElementNS(NS,'text');lb.setAttribute('x',Math.max(0,x)+3);lb.setAttribute('y',j*rh+11);lb.setAttribute('class','lbl');
   lb.textContent=name.length>room?name.slice(0,room-1)+'\u2026':name;svg.appendChild(lb)}});
 tl.textContent='';tl.appendChild(svg)}
tl.addEventListener('wheel',function(e){e.preventDefault();var w=tl.clientWidth||800,at=view.from+(e.offsetX/w)*(view.to-view.from),f=e.deltaY>0?1.25:0.8;
 view.from=at-(at-view.from)*f;view.to=at+(view.to-at)*f;draw()},{passive:false});
var drag=null;tl.addEventListener('mousedown',function(e){drag={x:e.clientX,from:view.from,to:view.to}});
window.addEventListener('mouseup',function(){drag=null});
window.addEventListener('mousemove',function(e){if(!drag)return;var d=(e.clientX-drag.x)/(tl.clientWidth||800)*(drag.to-drag.from);view.from=drag.from-d;view.to=drag.to-d;draw()});
var det=document.getElementById('details');
function pick(i){sel=i;var n=nodes[i];det.textContent='';
 det.appendChild(el('div','', 'pid '+n.pid+', parent '+n.ppid+(n.user?', user '+n.user:'')+(n.exec_id?', run '+n.exec_id:'')));
 det.appendChild(el('div','', outcome(n)+' after '+dur(n.duration_ms)+'; started '+n.start+(n.end?', ended '+n.end:'')));
 n.execs.forEach(function(x,j){det.appendChild(el('div','meta',(x.inherited?"its parent's program":'exec '+(j+1))+(x.exe?' '+x.exe:'')+(x.cwd?' in '+x.cwd:'')+' at '+x.time+(x.missing.length?' (missing: '+x.missing.join(', ')+')':'')));
  var ol=el('ol','argv');x.argv.forEach(function(a){ol.appendChild(el('li','',a))});det.appendChild(ol)});
 if(n.cost){var c=n.cost,parts=[];if(c.user_ms!==undefined)parts.push('user '+dur(c.user_ms));if(c.system_ms!==undefined)parts.push('system '+dur(c.system_ms));
  if(c.max_rss_kb!==undefined)parts.push('peak RSS '+(c.max_rss_kb/1024).toFixed(1)+' MiB');if(c.read_bytes!==undefined)parts.push('read '+c.read_bytes+' B');if(c.write_bytes!==undefined)parts.push('written '+c.write_bytes+' B');
  if(c.voluntary_ctxt_switches!==undefined)parts.push(c.voluntary_ctxt_switches+'+'+(c.involuntary_ctxt_switches===undefined?'?':c.involuntary_ctxt_switches)+' context switches');
  det.appendChild(el('div','cost','cost ('+c.source+'): '+parts.join(', ')+(n.missing.length?'; not known: '+n.missing.join(', '):'')))}
 if(n.children.length)det.appendChild(el('div','meta',n.children.length+' children'));
 render();draw()}
render();draw();window.addEventListener('resize',draw);
document.body.dataset.ready=String(nodes.length);
})();
`;

/** The page: the summary as JSON data, styles and the script that draws it. */
export function htmlReport(s: JobSummary): string {
  const data = JSON.stringify(s).replace(/</g, '\\u003c');
  const title = `trace: ${s.command.join(' ')}`.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>${title}</title><style>${STYLE}</style></head>
<body><header id="head"></header>
<main><section id="left"><input id="search" type="search" placeholder="search argv or pid"><div id="tree"></div></section>
<section id="right"><div id="timeline"></div><div id="details">Click a process for its details.</div></section></main>
<script type="application/json" id="data">${data}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
