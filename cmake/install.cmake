# install.cmake — what `cmake --install` lays out, and the CPack .deb.
#
#   bin/lockerfleet                          (top-level CMakeLists.txt)
#   LIBDIR/lockerfleet/*.so                  loadable modules (top-level CMakeLists.txt)
#   share/man/man1/lockerfleet.1             man page
#   share/doc/lockerfleet/                   README, docs/*.md, openapi.yaml
#   share/doc/lockerfleet/examples/          hub.ini, unit.ini, prometheus, grafana
#   lib/systemd/system/lockerfleet-*.service sandboxed Type=notify units
#   /etc/lockerfleet/{hub,unit}.ini          the units' --config (conffiles)
#
# Package: `cpack -G DEB` in a Release build dir gives lockerfleet_VERSION_ARCH.deb
# whose Depends come from dpkg-shlibdeps (tests/e2e/test_package.py).
include(GNUInstallDirs)

install(FILES ${CMAKE_SOURCE_DIR}/docs/lockerfleet.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
file(GLOB LF_DOC_FILES ${CMAKE_SOURCE_DIR}/docs/*.md ${CMAKE_SOURCE_DIR}/docs/openapi.yaml)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${LF_DOC_FILES} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/contrib/config/hub.ini ${CMAKE_SOURCE_DIR}/contrib/config/unit.ini
              ${CMAKE_SOURCE_DIR}/contrib/prometheus/alerts.yml
              ${CMAKE_SOURCE_DIR}/contrib/prometheus/prometheus.yml
              ${CMAKE_SOURCE_DIR}/contrib/grafana/lockerfleet.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# Debian keeps package units in /lib/systemd/system (merged /usr: the same
# directory as /usr/lib/systemd/system); relative to the prefix otherwise.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(LF_SYSTEMD_DIR /lib/systemd/system)
else()
  set(LF_SYSTEMD_DIR lib/systemd/system)
endif()
install(FILES ${CMAKE_SOURCE_DIR}/contrib/systemd/lockerfleet-hub.service
              ${CMAKE_SOURCE_DIR}/contrib/systemd/lockerfleet-unit.service
        DESTINATION ${LF_SYSTEMD_DIR})
# The services run `--config /etc/lockerfleet/{hub,unit}.ini`: ship the
# examples there, as conffiles of the .deb so an upgrade keeps local edits.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(LF_CONF_DIR /etc/lockerfleet)
else()
  set(LF_CONF_DIR etc/lockerfleet)
endif()
install(FILES ${CMAKE_SOURCE_DIR}/contrib/config/hub.ini ${CMAKE_SOURCE_DIR}/contrib/config/unit.ini
        DESTINATION ${LF_CONF_DIR})
file(WRITE ${CMAKE_BINARY_DIR}/debian/conffiles
     "/etc/lockerfleet/hub.ini\n/etc/lockerfleet/unit.ini\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/debian/conffiles)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lockerfleet)
set(CPACK_PACKAGE_VENDOR "lockerfleet")
set(CPACK_PACKAGE_CONTACT "lockerfleet maintainers <maintainers@lockerfleet.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "smart-locker fleet platform: hub, unit agent, simulator")
set(CPACK_PACKAGE_DESCRIPTION
    "One binary with subcommands: the central hub (HTTP API, event store, projections, fleet workers, dashboard, customer app), the unit agent, a fleet simulator and operator tools. Ships sandboxed systemd units.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Not linked, so dpkg-shlibdeps cannot see it: libsystemd is dlopen()ed for
# sd_notify when started by systemd (src/core/notify.c).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libsystemd0")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://lockerfleet.invalid/")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
