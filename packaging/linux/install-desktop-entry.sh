#!/bin/sh
# Add SegExplorer to the desktop's application menu (and "Open with") for this user.
#
#   ./install-desktop-entry.sh              install (run it from the unpacked SegExplorer folder)
#   ./install-desktop-entry.sh --uninstall  remove the menu entry and the icons again
#
# Installs share/applications/io.github.segexplorer.SegExplorer.desktop (pointing at the
# SegExplorer executable beside this script), the icons and the AppStream metadata under
# ${XDG_DATA_HOME:-~/.local/share}, and links the command line, segexplorer, into
# ~/.local/bin (unless something else of that name is there). Nothing else is touched; no
# root needed. Move the SegExplorer folder? Run this script again from its new place.
set -eu

APP_ID="io.github.segexplorer.SegExplorer"
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
desktop="$data/applications/$APP_ID.desktop"
bindir="$HOME/.local/bin"
command_link="$bindir/segexplorer"

refresh() {
    command -v update-desktop-database >/dev/null 2>&1 \
        && update-desktop-database -q "$data/applications" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 \
        && gtk-update-icon-cache -q -t "$data/icons/hicolor" 2>/dev/null || true
}

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$desktop" "$data/metainfo/$APP_ID.metainfo.xml"
    find "$data/icons/hicolor" -name "$APP_ID.*" -type f -delete 2>/dev/null || true
    if [ -L "$command_link" ] && [ "$(readlink "$command_link")" = "$here/segexplorer" ]; then
        rm -f "$command_link"
    fi
    refresh
    echo "SegExplorer removed from the application menu."
    exit 0
fi

exe="$here/SegExplorer"
if [ ! -x "$exe" ]; then
    echo "install-desktop-entry.sh: $exe not found: run this script from the SegExplorer folder" >&2
    exit 1
fi

# Exec quotes the path: first the Exec rules (escape \ " ` $ with a backslash, % as %%),
# then the string rules of every value (each backslash doubled).
quoted=$(printf '%s' "$exe" | sed -e 's/\\/\\\\/g' -e 's/["`$]/\\&/g' -e 's/%/%%/g' \
    | sed -e 's/\\/\\\\/g')
tryexec=$(printf '%s' "$exe" | sed -e 's/\\/\\\\/g')
template="$here/share/applications/$APP_ID.desktop"
mkdir -p "$data/applications" "$data/metainfo" "$data/icons"
{
    sed -n '1p' "$template"  # [Desktop Entry]
    printf 'Exec="%s" %%f\n' "$quoted"
    printf 'TryExec=%s\n' "$tryexec"
    sed -e '1d' -e '/^Exec=/d' -e '/^TryExec=/d' "$template"
} > "$desktop.tmp"
mv "$desktop.tmp" "$desktop"
cp -R "$here/share/icons/hicolor" "$data/icons/"
cp "$here/share/metainfo/$APP_ID.metainfo.xml" "$data/metainfo/"
refresh
echo "SegExplorer added to the application menu ($desktop)."
if [ -x "$here/segexplorer" ]; then
    if [ -e "$command_link" ] && [ ! -L "$command_link" ]; then
        echo "Left $command_link alone (not a link); the command line is $here/segexplorer."
    else
        mkdir -p "$bindir"
        ln -sfn "$here/segexplorer" "$command_link"
        echo "The command line: $command_link -> $here/segexplorer"
        case ":$PATH:" in
            *":$bindir:"*) ;;
            *) echo "($bindir is not on your PATH: add it, or call $here/segexplorer)" ;;
        esac
    fi
fi
