module example.com/imgforge/ccs-builder-mini

go 1.16

require github.com/otiai10/copy v1.6.0
