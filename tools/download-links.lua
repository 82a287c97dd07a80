-- Quarto filter: under the title of every chapter page (chapters/NN-name.qmd), links to download
-- the chapter's notebook (notebooks/NN-name.ipynb) and its source. `project: resources` in
-- _quarto.yml copies both into the site at the same paths; tools/fallback.py adds the same line.
-- (A book page cannot carry per-page `other-links` without front matter in every chapter, and
-- Quarto turns format and notebook links off for books.) data-noresolveinput keeps Quarto from
-- turning the link to the .qmd into a link to the chapter's .html page.

function Pandoc(doc)
  if not quarto.doc.is_format("html") then
    return doc
  end
  local stem = quarto.doc.input_file:match("[/\\]chapters[/\\]([^/\\]+)%.qmd$")
  if not stem then
    return doc
  end
  local links = string.format(
    '<p class="downloads">Download this chapter: '
      .. '<a href="../notebooks/%s.ipynb" download>notebook (.ipynb)</a> · '
      .. '<a href="%s.qmd" download data-noresolveinput>source (.qmd)</a></p>',
    stem, stem)
  local at = 1
  for i, block in ipairs(doc.blocks) do  -- after the chapter's title, when it is a heading
    if block.t == "Header" and block.level == 1 then
      at = i + 1
      break
    end
  end
  doc.blocks:insert(at, pandoc.RawBlock("html", links))
  return doc
end
