// The top bar: one open dropdown at a time, closed by Escape or a click elsewhere; a Menu button at phone width.
(() => {
  const topbar = document.getElementById('topbar');
  const toggle = topbar && topbar.querySelector('.nav-toggle');
  if (!toggle) return;
  const groups = () => [...topbar.querySelectorAll('.navgroup details, details.usermenu')];
  const closeAll = (except) => groups().forEach((d) => { if (d !== except) d.open = false; });

  topbar.addEventListener('toggle', (event) => { if (event.target.open) closeAll(event.target); }, true);
  document.addEventListener('click', (event) => { if (!topbar.contains(event.target)) closeAll(null); });
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const open = groups().find((d) => d.open);
    if (open) { open.open = false; open.querySelector('summary').focus(); }
  });

  // Collapsed only once this script runs, so the navigation stays usable without JavaScript.
  topbar.dataset.nav = 'closed';
  toggle.hidden = false;
  toggle.addEventListener('click', () => {
    const opening = topbar.dataset.nav === 'closed';
    topbar.dataset.nav = opening ? 'open' : 'closed';
    toggle.setAttribute('aria-expanded', String(opening));
  });
})();
