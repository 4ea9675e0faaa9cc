// Sorting and filtering of a block's channel table (rows carry data-value per cell).
(function () {
  const table = document.getElementById("channels");
  if (!table) return;
  const body = table.tBodies[0];
  const heads = Array.from(table.tHead.rows[0].cells);
  function cellValue(row, key, type) {
    const cell = row.querySelector('td[data-key="' + key + '"]');
    const raw = cell ? cell.dataset.value : "";
    if (type === "num") { const x = parseFloat(raw); return isNaN(x) ? null : x; }
    if (type === "bool") return raw === "true" ? 1 : 0;
    return raw;
  }
  function sortBy(th) {
    const key = th.dataset.sort, type = th.dataset.type;
    const dir = th.classList.contains("asc") ? -1 : 1;  // first click ascending, then toggles
    heads.forEach(h => h.classList.remove("asc", "desc"));
    th.classList.add(dir === 1 ? "asc" : "desc");
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellValue(a, key, type), y = cellValue(b, key, type);
      if (x === null && y === null) return cellValue(a, "channel", "num") - cellValue(b, "channel", "num");
      if (x === null) return 1;  // missing values last, whatever the direction
      if (y === null) return -1;
      if (x < y) return -dir;
      if (x > y) return dir;
      return cellValue(a, "channel", "num") - cellValue(b, "channel", "num");
    });
    rows.forEach(r => body.appendChild(r));
  }
  heads.forEach(th => {
    if (!th.dataset.sort) return;
    th.addEventListener("click", () => sortBy(th));
    th.addEventListener("keydown", e => { if (e.key === "Enter") sortBy(th); });
  });
  const boxes = Array.from(document.querySelectorAll(".group-filter"));
  const scale = document.getElementById("scale-filter");
  const count = document.getElementById("shown-count");
  function applyFilter() {
    const groups = new Set(boxes.filter(b => b.checked).map(b => b.value));
    const need = scale ? scale.value : "any";
    let shown = 0;
    Array.from(body.rows).forEach(r => {
      let ok = groups.has(r.dataset.group);
      if (need === "pass_all") ok = ok && r.dataset.passAll === "true";
      if (need === "pass_nomix") ok = ok && r.dataset.passNomix === "true";
      r.hidden = !ok;
      if (ok) shown += 1;
    });
    if (count) count.textContent = shown + " of " + body.rows.length + " channels shown";
  }
  boxes.forEach(b => b.addEventListener("change", applyFilter));
  if (scale) scale.addEventListener("change", applyFilter);
  applyFilter();
})();
