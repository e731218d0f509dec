// A tiny element builder: text always goes in as text nodes, never as HTML, because
// file names and messages come from users and the API.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue
    if (name === 'class') element.className = value
    else if (name === 'dataset') Object.assign(element.dataset, value)
    else element.setAttribute(name, value === true ? '' : String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    element.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return element
}

export function $(selector, root = document) {
  const element = root.querySelector(selector)
  if (!element) throw new Error(`The page has no ${selector}`)
  return element
}

export function show(element, visible = true) {
  element.hidden = !visible
}
