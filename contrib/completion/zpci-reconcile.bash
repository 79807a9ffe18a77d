# bash completion for zpci-reconcile(1)                      -*- shell-script -*-
#
# Completes commands, options, the values of --output and --color, the
# INVENTORY file, and guest names (for export) from `virsh -c URI list --all
# --name` when -c/--connect gave a URI.  Needs only bash; bash-completion, when
# loaded, finds this file by the command's name.
#
# tests/completion/test-completion.sh keeps the lists below in step with
# `zpci-reconcile --help`.

# Longest the guest listing may take: a completion must never hang a shell
# on a slow or unreachable host.
_zpci_reconcile_virsh_timeout=3

# The guest names of URI, one per line; nothing when virsh is missing, fails
# or takes too long.
_zpci_reconcile_guests()
{
    local uri=$1
    command -v virsh >/dev/null 2>&1 || return 0
    command -v timeout >/dev/null 2>&1 || return 0
    timeout -k 1 "$_zpci_reconcile_virsh_timeout" \
        virsh -q -c "$uri" list --all --name </dev/null 2>/dev/null
}

# bash splits COMP_WORDS at the characters of COMP_WORDBREAKS, so
# qemu:///system arrives as "qemu" ":" "///system" and --output=json as
# "--output" "=" "json".  Join the pieces that touch in COMP_LINE back into
# whole words: sets _zr_words, _zr_cword and _zr_cur.
_zpci_reconcile_words()
{
    _zr_words=()
    _zr_cword=0
    local line=${COMP_LINE-} i w pos=0 n=-1 glued
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        glued=0
        if [[ -n $line ]]; then
            glued=1
            while [[ $pos -lt ${#line} && ${line:pos:1} == [[:space:]] ]]; do
                pos=$((pos + 1))
                glued=0
            done
            [[ ${line:pos:${#w}} == "$w" ]] && pos=$((pos + ${#w}))
        fi
        if [[ $i -gt 0 && $glued -eq 1 && $n -ge 0 ]]; then
            _zr_words[n]+=$w
        else
            n=$((n + 1))
            _zr_words[n]=$w
        fi
        [[ $i -eq $COMP_CWORD ]] && _zr_cword=$n
    done
    _zr_cur=${_zr_words[_zr_cword]-}
}

_zpci_reconcile()
{
    local commands='validate plan apply export watch'
    local opts_with_arg='-c --connect -o --output --timeout -j --jobs --color --metrics-file --resync'
    local opts="$opts_with_arg --config-only --dry-run --atomic --no-host-check
                --live --all -q --quiet -v --verbose -h --help --version"

    local _zr_words _zr_cword _zr_cur
    _zpci_reconcile_words
    local cur=$_zr_cur prev=''
    [[ $_zr_cword -gt 0 ]] && prev=${_zr_words[_zr_cword - 1]}

    # --opt=value is one word after joining; complete the value part.
    local value_of=''
    if [[ $cur == --*=* ]]; then
        value_of=${cur%%=*}
        cur=${cur#*=}
    elif [[ $prev == -* && " $opts_with_arg " == *" $prev "* ]]; then
        value_of=$prev
    fi

    # Scan the words before the cursor: the command, the URI of -c, and
    # how many arguments the command has already.
    local i w command='' uri='' nargs=0 dashdash=0 skip=0
    for ((i = 1; i < _zr_cword; i++)); do
        w=${_zr_words[i]}
        if [[ $skip -eq 1 ]]; then
            skip=0
            continue
        fi
        if [[ $dashdash -eq 0 ]]; then
            case $w in
            --) dashdash=1; continue ;;
            -c | --connect) uri=${_zr_words[i + 1]-}; skip=1; continue ;;
            --connect=*) uri=${w#--connect=}; continue ;;
            -c?*) uri=${w#-c}; continue ;;
            --*=*) continue ;;
            -*)
                [[ " $opts_with_arg " == *" $w "* ]] && skip=1
                continue
                ;;
            esac
        fi
        if [[ -z $command ]]; then
            command=$w
        else
            nargs=$((nargs + 1))
        fi
    done
    # The URI as the shell will pass it: drop one level of quotes.
    if [[ $uri == \'*\' || $uri == \"*\" ]]; then
        uri=${uri:1:${#uri}-2}
    fi

    local replies=()
    case $value_of in
    -o | --output)
        mapfile -t replies < <(compgen -W 'text json' -- "$cur")
        ;;
    --color)
        mapfile -t replies < <(compgen -W 'auto always never' -- "$cur")
        ;;
    -c | --connect)
        mapfile -t replies < <(compgen -W 'qemu:///system qemu:///session qemu:///embed?root=' \
            -- "$cur")
        # the embed root's directory comes next, without a space
        [[ ${#replies[@]} -eq 1 && ${replies[0]} == *= ]] && compopt -o nospace 2>/dev/null
        ;;
    --timeout | -j | --jobs)
        # a number: nothing to offer
        ;;
    --resync)
        mapfile -t replies < <(compgen -W '30s 5m 15m 1h' -- "$cur")
        ;;
    --metrics-file)
        compopt -o filenames 2>/dev/null
        mapfile -t replies < <(compgen -f -- "$cur")
        ;;
    *)
        if [[ $dashdash -eq 0 && $cur == -* ]]; then
            mapfile -t replies < <(compgen -W "$opts" -- "$cur")
        elif [[ -z $command ]]; then
            mapfile -t replies < <(compgen -W "$commands" -- "$cur")
        else
            case $command in
            validate | plan | apply | watch)
                # one INVENTORY: a file, or - for standard input
                if [[ $nargs -eq 0 ]]; then
                    compopt -o filenames 2>/dev/null
                    mapfile -t replies < <(compgen -f -- "$cur")
                fi
                ;;
            export)
                # guest names, from the host -c names (never libvirt's default:
                # that could be a slow remote host the user did not ask for)
                if [[ -n $uri ]]; then
                    while IFS= read -r w; do
                        [[ -n $w && $w == "$cur"* ]] && replies+=("$w")
                    done < <(_zpci_reconcile_guests "$uri")
                fi
                ;;
            esac
        fi
        ;;
    esac

    # bash replaces only its own last piece of the word (after the last ':'
    # or '='): hand back the replies without what comes before that piece.
    local raw=${COMP_WORDS[COMP_CWORD]-} strip
    [[ $raw == [:=] ]] && raw=
    strip=$((${#_zr_cur} - ${#raw}))
    [[ $strip -lt 0 ]] && strip=0
    COMPREPLY=()
    for w in "${replies[@]}"; do
        [[ -n $value_of && $_zr_cur == --*=* ]] && w=${_zr_cur%%=*}=$w
        COMPREPLY+=("${w:strip}")
    done
    return 0
}

complete -F _zpci_reconcile zpci-reconcile
