"""napshare tracker."""
