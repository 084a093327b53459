_slirp__ns() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="slirp__ns"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        slirp__ns)
            opts="-c -e -r -m -6 -a -p -v -h --configure --exit-fd --ready-fd --mtu --enable-ipv6 --cidr6 --api-socket --cidr --disable-host-loopback --no-host-loopback --netns-type --userns-path --enable-sandbox --create-sandbox --enable-seccomp --outbound-addr --outbound-addr6 --disable-dns --macaddress --target-type --framing --dns-server --dns-search --pcap --debug --disable-dhcp --tftp-path --bootfile --socks5 --hostname --max-flows --tcp-hold-memory --reassembly-memory --publish --no-splice --queues --no-offload --busy-poll --version --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --exit-fd)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -e)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ready-fd)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -r)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mtu)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -m)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cidr6)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --api-socket)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -a)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cidr)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --netns-type)
                    COMPREPLY=($(compgen -W "pid path tapfd" -- "${cur}"))
                    return 0
                    ;;
                --userns-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --outbound-addr)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --outbound-addr6)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --macaddress)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --target-type)
                    COMPREPLY=($(compgen -W "netns bess stdio qemu" -- "${cur}"))
                    return 0
                    ;;
                --framing)
                    COMPREPLY=($(compgen -W "slip len16" -- "${cur}"))
                    return 0
                    ;;
                --dns-server)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dns-search)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --pcap)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tftp-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --bootfile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --socks5)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --hostname)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-flows)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tcp-hold-memory)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --reassembly-memory)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --publish)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -p)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --queues)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --busy-poll)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _slirp__ns -o nosort -o bashdefault -o default slirp-ns
else
    complete -F _slirp__ns -o bashdefault -o default slirp-ns
fi
